"""The live stream: one LISTEN connection per process fans new predictions, alerts and model changes
out to every subscriber.

The rows come in the NOTIFY payloads themselves (migration 0020): per statement that stored
predictions or queued alerts, per model and tag, payloads of one line per row (up to 250 rows per model
and tag and statement; the rest counted in one `skipped` message per model). The hub reads nothing
back from the tables: it splits each payload into lines, numbers them and hands the batch to the
subscribers whose filter wants its model, tag and kind; a prediction batch's compact rows become JSON
only when a client takes it — no JSON is parsed per row, and none is written for rows nobody follows.
Model changes (rare) are read on the LISTEN connection, not the API's pool.

The triggers build payloads only while some hub is watched: the hub keeps a row in
`coinfleet_stream_watch` valid while it has clients (and REPLAY_SECONDS after the last one left), so
scoring pays nothing for a stream nobody follows. A new client waits for that row before `subscribed`.

Each subscriber has a bounded queue (counted in messages): a client that falls behind by a full queue
is cut off, so no client can slow the hub, the database or another client.

Every message gets an id `<hub>-<n>` (the hub's random name, then a counter) and the hub keeps the last
REPLAY_EVENTS of them: a client that reconnects with `Last-Event-ID` gets what it missed from there, or
a gap when that id is older than the window or from another hub (a restarted server).
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
from functools import cached_property
from typing import Any, Literal

import asyncpg
import structlog

from coinfleet.constants import MODELS_CHANNEL, STREAM_CHANNEL
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.db.sql import query

log = structlog.get_logger(__name__)
Kind = Literal["prediction", "alert", "model"]
#: messages kept for clients that reconnect with Last-Event-ID
REPLAY_EVENTS = 10_000
#: seconds the hub keeps the rows coming after its last client left (a reconnecting client misses nothing)
REPLAY_SECONDS = 60.0
#: seconds a hub's watch row makes the triggers send rows; renewed while the hub is watched
WATCH_SECONDS = 30.0
#: a watch row with less than this many seconds left is renewed
WATCH_RENEW_SECONDS = 20.0
#: seconds between checks of the watch row
WATCH_CHECK_SECONDS = 5.0
SEP = "\r\n"  #: line separator of the SSE messages (sse_starlette's default)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Messages from one notification: one kind, model and tag. `event` is the SSE event name: the
    kind, or `skipped` for a count of rows not sent. `lines` are the messages' JSON, or for predictions
    compact rows `id,probability,"metric_ts",mint` made JSON when a client takes them (`created` is
    their created_at)."""

    event: str
    kind: str  #: what the kind filter sees (`prediction`, `alert`, `model`)
    model: str
    tag: str | None
    lines: tuple[str, ...]
    created: str | None = None  #: created_at of compact prediction rows
    first: int = 0  #: the hub's number of the first line (0 until the hub numbers it)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def last(self) -> int:
        """The hub's number of the last line."""
        return self.first + len(self.lines) - 1

    @cached_property
    def data(self) -> tuple[str, ...]:
        """Each message's JSON `data` (made once, for the first client that takes the batch)."""
        if self.event != "prediction" or self.created is None:
            return self.lines
        return tuple(_prediction_json(line, self.model, self.tag, self.created) for line in self.lines)

    def sse(self, hub: str, start: int = 0) -> bytes:
        """The SSE messages of lines[start:], ready to send."""
        return "".join(
            f"id: {hub}-{self.first + n}{SEP}event: {self.event}{SEP}data: {line}{SEP}{SEP}"
            for n, line in enumerate(self.data[start:], start)
        ).encode()


def _prediction_json(line: str, model: str, tag: str | None, created: str) -> str:
    # model and tag names are plain by the tables' CHECKs; metric_ts comes quoted from to_json
    row_id, probability, metric_ts, mint = line.split(",", 3)
    return (
        f'{{"kind": "prediction", "id": {row_id}, "model": "{model}", "mint": {json.dumps(mint)}, '
        f'"metric_ts": {metric_ts}, "probability": {probability}, "tag": "{tag}", "created_at": "{created}"}}'
    )


#: a batch and the index of its first line still to send
Piece = tuple[Batch, int]


def parse_note(payload: str) -> Batch | None:
    """The batch of one stream notification (`<event> <kind> <model> <tag> <created>`, then one line per
    message); None for a payload of another form (e.g. from an older trigger)."""
    header, _, body = payload.partition("\n")
    parts = header.split(" ")
    if len(parts) != 5 or not body:
        return None
    event, kind, model, tag, created = parts
    return Batch(
        event=event, kind=kind, model=model, tag=None if tag == "-" else tag, lines=tuple(body.split("\n")),
        created=None if created == "-" else created,
    )  # fmt: skip


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


@dataclass(frozen=True, kw_only=True)
class StreamFilter:
    """Which messages a subscriber wants; None means all."""

    models: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    kinds: frozenset[str] | None = None

    def wants(self, batch: Batch) -> bool:
        """True when the batch passes every given filter (model changes and counts pass the tag filter)."""
        if self.kinds is not None and batch.kind not in self.kinds:
            return False
        if self.models is not None and batch.model not in self.models:
            return False
        return self.tags is None or batch.tag is None or batch.tag in self.tags


@dataclass(eq=False)
class Subscriber:
    """One client's queue of at most `size` messages; `cut_off` is set when it fell a full queue behind.
    `missed` is what it asked for with Last-Event-ID (sent before the queue); `gap` is set when that id
    was out of the window."""

    filter: StreamFilter
    size: int
    cut_off: asyncio.Event = field(default_factory=asyncio.Event)
    missed: list[Piece] = field(default_factory=list)
    gap: bool = False
    _queue: deque[Batch] = field(default_factory=deque)
    _waiting: int = 0  #: messages queued
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def waiting(self) -> int:
        """Messages queued and not taken yet."""
        return self._waiting

    def offer(self, batch: Batch) -> None:
        """Queue the batch, or cut the subscriber off when it would overfill the queue."""
        if self.cut_off.is_set() or not self.filter.wants(batch):
            return
        if self._waiting + len(batch) > self.size:
            self.cut_off.set()
        else:
            self._queue.append(batch)
            self._waiting += len(batch)
        self._ready.set()

    def stop(self) -> None:
        """Cut the subscriber off (the hub stops)."""
        self.cut_off.set()
        self._ready.set()

    async def pieces(self) -> AsyncIterator[Piece]:
        """The missed messages, then queued ones until cut off (what was queued before is still sent)."""
        for piece in self.missed:
            if self.filter.wants(piece[0]):
                yield piece
        while True:
            if self._queue:
                batch = self._queue.popleft()
                self._waiting -= len(batch)
                yield batch, 0
            elif self.cut_off.is_set():
                return
            else:
                self._ready.clear()
                await self._ready.wait()


class ReplayWindow:
    """The hub's last messages, numbered, for clients that resume with Last-Event-ID."""

    def __init__(self, size: int) -> None:
        self.name = secrets.token_hex(4)  #: differs per hub, so an id from another server is recognised
        self._batches: deque[Batch] = deque()
        self._kept = 0
        self._size = size
        self._next = 1

    def add(self, batch: Batch) -> Batch:
        """The batch numbered and remembered (the oldest batches are forgotten beyond the window)."""
        numbered = replace(batch, first=self._next)
        self._next += len(batch)
        self._batches.append(numbered)
        self._kept += len(batch)
        while self._kept > self._size:
            self._kept -= len(self._batches.popleft())
        return numbered

    def after(self, event_id: str) -> list[Piece] | None:
        """The messages after the one with `event_id`; None when that id is not this hub's, or older than
        the window (messages were dropped since)."""
        name, _, number = event_id.partition("-")
        if name != self.name or not number.isdigit() or int(number) >= self._next:
            return None
        last = int(number)
        oldest = self._batches[0].first if self._batches else self._next
        if last < oldest - 1:
            return None
        return [(batch, max(0, last + 1 - batch.first)) for batch in self._batches if batch.last > last]


class StreamHub:
    """Listens for stream notifications and hands batches to subscribers."""

    def __init__(self, *, dsn: str, pool: asyncpg.Pool, queue_size: int) -> None:
        self._dsn = dsn
        self._pool = pool
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._notes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._first_try = asyncio.Event()  #: the first connection attempt is over, whatever its outcome
        self.replay = ReplayWindow(REPLAY_EVENTS)
        self._last_left: float | None = None  #: monotonic time the last client left
        self._watch_until = 0.0  #: monotonic time the watch row lapses (as far as this hub knows)
        self._watch_lock = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        """Clients connected now."""
        return len(self._subscribers)

    async def start(self) -> None:
        """Start listening: returns once the LISTEN is in place, or once the first try found the database
        away (the hub then goes on trying, so the HTTP side comes up during an outage)."""
        run = asyncio.create_task(self._run(), name="stream-hub")
        self._tasks = [run, asyncio.create_task(self._keep_watch(), name="stream-watch")]
        first_try = asyncio.create_task(self._first_try.wait())
        await asyncio.wait({first_try, run}, return_when=asyncio.FIRST_COMPLETED)
        first_try.cancel()
        if run.done():
            run.result()  # it failed in a way no retry mends (a bad DSN): say why

    async def close(self) -> None:
        """Stop listening, cut every subscriber off and withdraw the watch row."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscriber in self._subscribers:
            subscriber.stop()
        if self._watch_until:
            with contextlib.suppress(Exception):  # it lapses by itself within WATCH_SECONDS
                async with self._pool.acquire(timeout=2) as conn:
                    await conn.execute(query("stream_unwatch"), self.replay.name)

    async def watch(self) -> None:
        """Make sure the triggers send rows for a while (this hub's watch row is valid)."""
        async with self._watch_lock:
            began = time.monotonic()
            if self._watch_until - began > WATCH_RENEW_SECONDS:
                return
            async with self._pool.acquire() as conn:
                await conn.execute(query("stream_watch"), self.replay.name, WATCH_SECONDS)
            self._watch_until = began + WATCH_SECONDS

    @contextlib.contextmanager
    def subscription(
        self, stream_filter: StreamFilter, last_event_id: str | None = None
    ) -> Iterator[Subscriber]:
        """A subscriber for the duration of a `with` block; with `last_event_id`, it first gets the
        messages after that one (no await between reading the window and subscribing: nothing is lost
        or doubled)."""
        subscriber = Subscriber(filter=stream_filter, size=self._queue_size)
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

    async def _keep_watch(self) -> None:
        while True:
            if self._watched():
                try:
                    await self.watch()
                except (asyncpg.PostgresError, TimeoutError, *DATABASE_ERRORS) as exc:
                    log.warning("stream_watch_failed", error=str(exc))
            await asyncio.sleep(WATCH_CHECK_SECONDS)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._notes.put_nowait((channel, payload))

    async def _run(self) -> None:
        """Listen for as long as the hub lives: a lost connection (the database restarted or went away
        mid-read) is opened again with the outage backoff, said once in the log and in `/ready`."""
        outage = Outage("stream")
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "coinfleet-stream"}
                )
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
            if not self._watched():
                continue
            batch = (
                await _model_batch(conn, int(payload)) if channel == MODELS_CHANNEL else parse_note(payload)
            )
            if batch is not None:
                self._publish(batch)

    def _publish(self, batch: Batch) -> None:
        numbered = self.replay.add(batch)
        for subscriber in list(self._subscribers):
            subscriber.offer(numbered)


async def _model_batch(conn: asyncpg.Connection, model_id: int) -> Batch | None:
    # read on the LISTEN connection, so it never queues behind the API's requests for the pool
    row = await conn.fetchrow(query("stream_model"), model_id)
    if row is None:
        return None
    line = json.dumps({"kind": "model", **dict(row)}, default=_json_default)
    return Batch(event="model", kind="model", model=row["name"], tag=None, lines=(line,))
