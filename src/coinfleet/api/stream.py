"""The live stream: one LISTEN connection per process fans new predictions, alerts and model changes
out to every subscriber.

The database sends one NOTIFY per statement that stored predictions or queued alerts, naming the id
range and the models (migration 0016); the hub reads those rows once, for all subscribers, on its
LISTEN connection (not the API's pool, where requests could hold it up). Each subscriber has a
bounded queue: a client that falls behind by a full queue is cut off, so no client can slow the hub,
the database or another client.

Every event gets an id `<hub>-<n>` (the hub's random name, then a counter) and the hub keeps the last
REPLAY_EVENTS of them: a client that reconnects with `Last-Event-ID` gets what it missed from there, or
a gap when that id is older than the window or from another hub (a restarted server). The hub goes on
reading for REPLAY_SECONDS after its last client left, so a quick reconnect misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import asyncpg
import structlog

from coinfleet.constants import MODELS_CHANNEL, STREAM_CHANNEL
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.db.sql import query

log = structlog.get_logger(__name__)
Kind = Literal["prediction", "alert", "model"]
#: most rows the hub reads for one NOTIFY (a group commit of 20 models × 2000 events is 40,000)
MAX_ROWS_PER_NOTIFY = 50_000
#: ids remembered per kind so a row seen through two overlapping id ranges is sent once
REMEMBERED_IDS = 200_000
#: events kept for clients that reconnect with Last-Event-ID
REPLAY_EVENTS = 10_000
#: seconds the hub keeps reading after its last client left (a reconnecting client misses nothing)
REPLAY_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """One message of the stream."""

    kind: Kind
    id: int
    model: str
    tag: str | None
    data: dict[str, Any]
    seq: int = 0  #: the hub's counter (0 until the hub numbers it)

    def encoded(self) -> str:
        """The JSON `data` line of the SSE message."""
        return json.dumps(self.data, default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


@dataclass(frozen=True, kw_only=True)
class StreamFilter:
    """Which events a subscriber wants; None means all."""

    models: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    kinds: frozenset[str] | None = None

    def wants(self, event: StreamEvent) -> bool:
        """True when the event passes every given filter (model events pass the tag filter)."""
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.models is not None and event.model not in self.models:
            return False
        return self.tags is None or event.tag is None or event.tag in self.tags


@dataclass(eq=False)
class Subscriber:
    """One client's queue; `cut_off` is set when it fell a full queue behind. `missed` is what it asked
    for with Last-Event-ID (sent before the queue); `gap` is set when that id was out of the window."""

    filter: StreamFilter
    queue: asyncio.Queue[StreamEvent]
    cut_off: asyncio.Event = field(default_factory=asyncio.Event)
    missed: list[StreamEvent] = field(default_factory=list)
    gap: bool = False

    def offer(self, event: StreamEvent) -> None:
        """Queue the event, or cut the subscriber off when its queue is full."""
        if self.cut_off.is_set() or not self.filter.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.cut_off.set()

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The missed events, then queued ones until cut off (what was queued before is still delivered)."""
        for event in self.missed:
            if self.filter.wants(event):
                yield event
        while True:
            if self.queue.empty() and self.cut_off.is_set():
                return
            getter = asyncio.ensure_future(self.queue.get())
            cut = asyncio.ensure_future(self.cut_off.wait())
            await asyncio.wait({getter, cut}, return_when=asyncio.FIRST_COMPLETED)
            cut.cancel()
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()


class _Seen:
    """The last N ids of one kind."""

    def __init__(self, size: int) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def first_time(self, item: int) -> bool:
        """True (and remembered) the first time `item` is seen."""
        if item in self._ids:
            return False
        self._ids.add(item)
        self._order.append(item)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class ReplayWindow:
    """The hub's last events, numbered, for clients that resume with Last-Event-ID."""

    def __init__(self, size: int) -> None:
        self.name = secrets.token_hex(4)  #: differs per hub, so an id from another server is recognised
        self._events: deque[StreamEvent] = deque(maxlen=size)
        self._next = 1

    def add(self, event: StreamEvent) -> StreamEvent:
        """The event numbered and remembered."""
        numbered = replace(event, seq=self._next)
        self._next += 1
        self._events.append(numbered)
        return numbered

    def event_id(self, event: StreamEvent) -> str:
        """The SSE id of a numbered event."""
        return f"{self.name}-{event.seq}"

    def after(self, event_id: str) -> list[StreamEvent] | None:
        """The events after the one with `event_id`; None when that id is not this hub's, or older than
        the window (events were dropped since)."""
        name, _, number = event_id.partition("-")
        if name != self.name or not number.isdigit() or int(number) >= self._next:
            return None
        last = int(number)
        oldest = self._events[0].seq if self._events else self._next
        if last < oldest - 1:
            return None
        return [event for event in self._events if event.seq > last]


class StreamHub:
    """Listens for stream notifications and hands events to subscribers."""

    def __init__(self, *, dsn: str, queue_size: int) -> None:
        self._dsn = dsn
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._notes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._seen: dict[str, _Seen] = {k: _Seen(REMEMBERED_IDS) for k in ("prediction", "alert")}
        self._task: asyncio.Task[None] | None = None
        self._first_try = asyncio.Event()  #: the first connection attempt is over, whatever its outcome
        self.replay = ReplayWindow(REPLAY_EVENTS)
        self._last_left: float | None = None  #: monotonic time the last client left

    @property
    def subscribers(self) -> int:
        """Clients connected now."""
        return len(self._subscribers)

    async def start(self) -> None:
        """Start listening: returns once the LISTEN is in place, or once the first try found the database
        away (the hub then goes on trying, so the HTTP side comes up during an outage)."""
        self._task = asyncio.create_task(self._run(), name="stream-hub")
        first_try = asyncio.create_task(self._first_try.wait())
        await asyncio.wait({first_try, self._task}, return_when=asyncio.FIRST_COMPLETED)
        first_try.cancel()
        if self._task.done():
            self._task.result()  # it failed in a way no retry mends (a bad DSN): say why

    async def close(self) -> None:
        """Stop listening and cut every subscriber off."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subscriber in self._subscribers:
            subscriber.cut_off.set()

    @contextlib.contextmanager
    def subscription(
        self, stream_filter: StreamFilter, last_event_id: str | None = None
    ) -> Iterator[Subscriber]:
        """A subscriber for the duration of a `with` block; with `last_event_id`, it first gets the events
        after that one (no await between reading the window and subscribing: nothing is lost or doubled)."""
        subscriber = Subscriber(filter=stream_filter, queue=asyncio.Queue(self._queue_size))
        if last_event_id is not None:
            missed = self.replay.after(last_event_id)
            subscriber.missed, subscriber.gap = missed or [], missed is None
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            if not self._subscribers:
                self._last_left = time.monotonic()

    def _watched(self) -> bool:
        """Someone listens, or did within REPLAY_SECONDS (and may come back for what it missed)."""
        if self._subscribers:
            return True
        return self._last_left is not None and time.monotonic() - self._last_left < REPLAY_SECONDS

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._notes.put_nowait((channel, payload))

    async def _run(self) -> None:
        """Listen for as long as the hub lives: a lost connection (the database restarted or went away
        mid-read) is opened again with the outage backoff, said once in the log and in `/ready`."""
        outage = Outage("stream")
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:
                pause = outage.failed(exc)
                self._first_try.set()
                await asyncio.sleep(pause)
                continue
            try:
                await self._listen(conn, outage)
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:
                log.warning("stream_listen_lost", error=f"{type(exc).__name__}: {exc}")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _listen(self, conn: asyncpg.Connection, outage: Outage) -> None:
        await conn.add_listener(STREAM_CHANNEL, self._on_notify)
        await conn.add_listener(MODELS_CHANNEL, self._on_notify)
        outage.succeeded()
        self._first_try.set()
        while not conn.is_closed():
            try:
                channel, payload = await asyncio.wait_for(self._notes.get(), timeout=5.0)
            except TimeoutError:
                continue
            if self._watched():
                await self._dispatch(conn, channel, payload)

    async def _dispatch(self, conn: asyncpg.Connection, channel: str, payload: str) -> None:
        # rows are read on the LISTEN connection, so the stream never queues behind the API's requests
        # for the pool's few connections
        if channel == MODELS_CHANNEL:
            events = await _model_events(conn, int(payload))
        else:
            events = await self._row_events(conn, json.loads(payload))
        for event in events:
            numbered = self.replay.add(event)
            for subscriber in list(self._subscribers):
                subscriber.offer(numbered)

    async def _row_events(self, conn: asyncpg.Connection, note: dict[str, Any]) -> list[StreamEvent]:
        kind: Kind = "alert" if note["kind"] == "alert" else "prediction"
        statement = "stream_alerts" if kind == "alert" else "stream_predictions"
        rows = await conn.fetch(
            query(statement), note["first"], note["last"], note["models"], MAX_ROWS_PER_NOTIFY
        )
        seen = self._seen[kind]
        return [_row_event(kind, dict(row)) for row in rows if seen.first_time(row["id"])]


def _row_event(kind: Kind, row: dict[str, Any]) -> StreamEvent:
    return StreamEvent(
        kind=kind, id=row["id"], model=row["model"], tag=row["tag"], data={"kind": kind, **row}
    )


async def _model_events(conn: asyncpg.Connection, model_id: int) -> list[StreamEvent]:
    row = await conn.fetchrow(query("stream_model"), model_id)
    if row is None:
        return []
    data = {"kind": "model", **dict(row)}
    return [StreamEvent(kind="model", id=row["id"], model=row["name"], tag=None, data=data)]
