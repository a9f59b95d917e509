"""The live stream: one LISTEN connection per process fans new predictions, alerts and model changes
out to every subscriber.

The database sends one NOTIFY per statement that stored predictions or queued alerts, naming the id
range and the models (migration 0016); the hub reads those rows once, for all subscribers, and only
for models someone listens to. Each subscriber has a bounded queue: a client that falls behind by a
full queue is cut off, so no client can slow the hub, the database or another client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg
import structlog

from coinfleet.constants import MODELS_CHANNEL, STREAM_CHANNEL
from coinfleet.db.sql import query

log = structlog.get_logger(__name__)
Kind = Literal["prediction", "alert", "model"]
#: most rows the hub reads for one NOTIFY (a group commit of 20 models × 2000 events is 40,000)
MAX_ROWS_PER_NOTIFY = 50_000
#: ids remembered per kind so a row seen through two overlapping id ranges is sent once
REMEMBERED_IDS = 200_000
#: seconds between reconnection attempts of a lost LISTEN connection
RECONNECT_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """One message of the stream."""

    kind: Kind
    id: int
    model: str
    tag: str | None
    data: dict[str, Any]

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
    """One client's queue; `cut_off` is set when it fell a full queue behind."""

    filter: StreamFilter
    queue: asyncio.Queue[StreamEvent]
    cut_off: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: StreamEvent) -> None:
        """Queue the event, or cut the subscriber off when its queue is full."""
        if self.cut_off.is_set() or not self.filter.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.cut_off.set()

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Queued events until cut off (what was queued before is still delivered)."""
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


class StreamHub:
    """Listens for stream notifications and hands events to subscribers."""

    def __init__(self, *, dsn: str, pool: asyncpg.Pool, queue_size: int) -> None:
        self._dsn = dsn
        self._pool = pool
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._notes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._seen: dict[str, _Seen] = {k: _Seen(REMEMBERED_IDS) for k in ("prediction", "alert")}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def subscribers(self) -> int:
        """Clients connected now."""
        return len(self._subscribers)

    async def start(self) -> None:
        """Start listening (returns once the LISTEN is in place)."""
        self._task = asyncio.create_task(self._run(), name="stream-hub")
        await self._listening.wait()

    async def close(self) -> None:
        """Stop listening and cut every subscriber off."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subscriber in self._subscribers:
            subscriber.cut_off.set()

    @contextlib.contextmanager
    def subscription(self, stream_filter: StreamFilter) -> Any:
        """A subscriber for the duration of a `with` block."""
        subscriber = Subscriber(filter=stream_filter, queue=asyncio.Queue(self._queue_size))
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._notes.put_nowait((channel, payload))

    async def _run(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("stream_listen_failed", error=str(exc))
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            try:
                await self._listen(conn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("stream_listen_lost", error=str(exc))
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        await conn.add_listener(STREAM_CHANNEL, self._on_notify)
        await conn.add_listener(MODELS_CHANNEL, self._on_notify)
        self._listening.set()
        while not conn.is_closed():
            try:
                channel, payload = await asyncio.wait_for(self._notes.get(), timeout=5.0)
            except TimeoutError:
                continue
            if self._subscribers:
                await self._dispatch(channel, payload)

    async def _dispatch(self, channel: str, payload: str) -> None:
        async with self._pool.acquire() as conn:
            if channel == MODELS_CHANNEL:
                events = await _model_events(conn, int(payload))
            else:
                events = await self._row_events(conn, json.loads(payload))
        for event in events:
            for subscriber in list(self._subscribers):
                subscriber.offer(event)

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
