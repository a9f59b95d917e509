"""Wake-ups for lanes: one LISTEN connection per process fans NOTIFYs out to subscribers.

A lost notification costs at most one poll interval: subscribers also wake on a timer. An event whose
NOTIFY came while an older transaction was still open cannot be read until that one ends, and no NOTIFY
says when: a reader that saw such events looks again after short, doubling pauses (`IdlePause`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

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
        return min(self._poll_interval, self.FIRST_SECONDS * 2.0 ** (self._held - 1))

    def reset(self) -> None:
        """The reader found events: the next held-back pause is short again."""
        self._held = 0


class Notifier:
    """LISTENs on channels and sets every subscriber's signal when a NOTIFY arrives."""

    def __init__(self, dsn: str, channels: tuple[str, ...]) -> None:
        self._dsn = dsn
        self._channels = channels
        self._subscribers: dict[str, set[Signal]] = {c: set() for c in channels}
        self._conn: asyncpg.Connection | None = None

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
        """Open the listening connection."""
        self._conn = await asyncpg.connect(self._dsn)
        for channel in self._channels:
            await self._conn.add_listener(channel, self._on_notify)

    async def close(self) -> None:
        """Close the listening connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        for signal in self._subscribers.get(channel, ()):
            signal.set()
