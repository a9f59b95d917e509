"""Wake-ups for lanes: one LISTEN connection per process fans NOTIFYs out to subscribers.

A lost notification costs at most one poll interval: subscribers also wake on a timer. An event whose
NOTIFY came while an older transaction was still open cannot be read until that one ends, and no NOTIFY
says when: a reader that saw such events looks again after short, doubling pauses (`IdlePause`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from coinfleet.db.outage import DATABASE_ERRORS, Outage

log = structlog.get_logger(__name__)


class Signal:
    """A wake-up flag one subscriber waits on."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Wake the subscriber (idempotent until it waits again)."""
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a wake-up or the timeout; return True when woken. Clears the flag."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()


class IdlePause:
    """How long a reader that found nothing waits for a wake-up before it reads again."""

    FIRST_SECONDS = 0.001  #: the first pause while events wait for an older transaction
    MAX_DOUBLINGS = 20  #: 0.001 s doubled 20 times is 17 min, past any poll interval (at most 60 s)

    def __init__(self, poll_interval: float) -> None:
        self._poll_interval = poll_interval
        self._held = 0  #: pauses in a row with events held back

    def seconds(self, *, held_back: bool) -> float:
        """The poll interval, or while committed events wait for an older transaction a pause that
        starts at a millisecond and doubles up to the poll interval (a transaction left open must not
        make every reader poll at a kilohertz)."""
        if not held_back:
            self._held = 0
            return self._poll_interval
        self._held += 1
        # the exponent stops growing once the pause has reached the poll interval: 2.0 ** 1024 overflows,
        # which killed every lane after ~1,000 held-back reads (a transaction open for 30 s at 50 events/s)
        doublings = min(self._held - 1, self.MAX_DOUBLINGS)
        return min(self._poll_interval, self.FIRST_SECONDS * 2.0**doublings)

    def reset(self) -> None:
        """The reader found events: the next held-back pause is short again."""
        self._held = 0


class Notifier:
    """LISTENs on channels and sets every subscriber's signal when a NOTIFY arrives.

    The listening connection is watched: when it is lost (a database restart, a network cut) it is
    opened again with capped backoff, and every subscriber is woken once it is back, since NOTIFYs
    sent meanwhile were lost.
    """

    def __init__(self, dsn: str, channels: tuple[str, ...]) -> None:
        self._dsn = dsn
        self._channels = channels
        self._subscribers: dict[str, set[Signal]] = {c: set() for c in channels}
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._outage = Outage(f"listen:{','.join(channels)}")
        self.connects = 0  #: listening connections opened (for tests: more than one means reconnects)

    @property
    def listening(self) -> bool:
        """Whether the listening connection is open now."""
        return self._conn is not None and not self._conn.is_closed()

    def subscribe(self, channel: str, signal: Signal | None = None) -> Signal:
        """A signal (new, or one given to wake on several channels) that wakes on every NOTIFY of
        `channel`."""
        signal = signal or Signal()
        self._subscribers[channel].add(signal)
        return signal

    def unsubscribe(self, channel: str, signal: Signal) -> None:
        """Stop waking `signal`."""
        self._subscribers[channel].discard(signal)

    async def start(self) -> None:
        """Open the listening connection (trying once now), and keep it open until `close`."""
        try:
            await self._connect()
        except DATABASE_ERRORS as exc:
            self._outage.failed(exc)
            self._lost.set()
        self._keeper = asyncio.create_task(self._keep_listening(), name="notifier")

    async def close(self) -> None:
        """Close the listening connection."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        self._lost.clear()
        conn = await asyncpg.connect(self._dsn)
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn
        self.connects += 1
        self._outage.succeeded()

    async def _keep_listening(self) -> None:
        while True:
            await self._lost.wait()
            self._conn = None
            try:
                await self._connect()
            except DATABASE_ERRORS as exc:
                await asyncio.sleep(self._outage.failed(exc))
                self._lost.set()
                continue
            self._wake_all()  # what was notified while the connection was down

    def _on_lost(self, _conn: Any) -> None:
        self._lost.set()

    def _wake_all(self) -> None:
        for signals in self._subscribers.values():
            for signal in signals:
                signal.set()

    def _on_notify(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        for signal in self._subscribers.get(channel, ()):
            signal.set()
