"""What lanes write: predictions, scan-cache rows and cursors, for one model or many, in one statement."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from coinfleet.alerts.outbox import OutboxItem, write_outbox
from coinfleet.db.sql import query
from coinfleet.errors import Fenced
from coinfleet.events.cursor import Cursor, Event
from coinfleet.lanes.rules import CoinState, Skip, Tag
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord
from coinfleet.targets import TargetSpec


@dataclass(kw_only=True, slots=True)
class NewPrediction:
    """One prediction to store, with the metric row it was made on."""

    event: Event
    row: MetricRow
    probability: float
    tag: Tag


#: the SQLSTATE the store statement fails with when a batch's cursor may not move (coinfleet_require_moved)
FENCED_SQLSTATE = "CF409"
#: tags travel by their position in this list, from 1 (SQL arrays count from 1); 0 is no tag
TAG_NAMES = [tag.value for tag in Tag]
_TAG_CODE = {tag: code for code, tag in enumerate(Tag, start=1)}
_NULL = -(2**63)  #: a NULL phase or time in an int8 row: neither an int4 nor a timestamptz can be it
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class SetAside:
    """An event a lane does not score for its model, and why: the model fails on its row alone
    (Skip.MODEL_FAILED), or it is dated ahead of the wall clock or at ±infinity (Skip.BAD_TIME)."""

    event: Event
    reason: Skip
    detail: str


@dataclass(kw_only=True, slots=True)
class Batch:
    """What one lane stores for one batch of events: its predictions, the scan-cache rows it changed,
    its webhook outbox rows and the model's new cursor. Without `keeps_scan_cache` (the lane keeps
    none, `states` is empty) the cursor row notes that the cache misses these predictions. With an
    `epoch` (the lane's lease) it is stored only while that lease is current (else Fenced)."""

    model: ModelRecord
    predictions: Sequence[NewPrediction]
    states: Mapping[str, CoinState]
    cursor: Cursor
    keeps_scan_cache: bool = True
    outbox: Sequence[OutboxItem] = ()
    epoch: int | None = None
    #: where the lane believes the stored cursor is; the store fails (CURSOR_MOVED) if it is elsewhere
    expected: Cursor | None = None
    set_aside: Sequence[SetAside] = ()


async def write_batches(conn: asyncpg.Connection, batches: Sequence[Batch], *, skip_repeats: bool) -> None:
    """Store batches with their outbox rows and set-aside events, all or nothing: one statement when
    there are neither (a transaction of its own), else a transaction around it and their inserts."""
    outbox = any(b.outbox for b in batches)
    extra = outbox or any(b.set_aside for b in batches)
    async with conn.transaction() if extra else contextlib.nullcontext():
        ids = await store_batches(conn, batches, want_ids=outbox, skip_repeats=skip_repeats)
        for batch in batches:
            if batch.set_aside:
                await write_set_aside(conn, batch.model.id, batch.set_aside)
            if batch.outbox:
                model_id = batch.model.id
                own = {(mint, ts): id_ for (owner, mint, ts), id_ in ids.items() if owner == model_id}
                await write_outbox(conn, batch.model, batch.outbox, own)


async def write_batches_or_skip_repeats(
    conn: asyncpg.Connection, batches: Sequence[Batch], *, skip_repeats: bool
) -> bool:
    """`write_batches`, and when a prediction repeats a stored one (a metric row inserted twice) and so
    fails the plain insert, the same batches again skipping repeats. True when a repeat was met."""
    try:
        await write_batches(conn, batches, skip_repeats=skip_repeats)
    except asyncpg.UniqueViolationError:
        await write_batches(conn, batches, skip_repeats=True)
        return True
    return False


async def store_batch(
    conn: asyncpg.Connection,
    model: ModelRecord,
    predictions: Sequence[NewPrediction],
    states: Mapping[str, CoinState],
    cursor: Cursor,
    *,
    want_ids: bool = False,
    skip_repeats: bool = True,
    keeps_scan_cache: bool = True,
) -> dict[tuple[str, datetime], int]:
    """`store_batches` for one model's batch; with `want_ids` its new prediction ids by (coin, metric
    time)."""
    batch = Batch(
        model=model, predictions=predictions, states=states, cursor=cursor, keeps_scan_cache=keeps_scan_cache
    )
    ids = await store_batches(conn, [batch], want_ids=want_ids, skip_repeats=skip_repeats)
    return {(mint, ts): id_ for (_, mint, ts), id_ in ids.items()}


async def store_batches(
    conn: asyncpg.Connection, batches: Sequence[Batch], *, want_ids: bool = False, skip_repeats: bool = True
) -> dict[tuple[int, str, datetime], int]:
    """Store batches of one or more models, at most one batch per model (target and threshold as a
    snapshot per prediction), in one statement; with `want_ids` the new prediction ids by (model id,
    coin, metric time). Without `skip_repeats` a prediction that repeats a stored model, coin and metric
    time fails the statement (asyncpg.UniqueViolationError) instead of being left out, which saves
    PostgreSQL a look into the unique index before every insert. A batch whose cursor may not move
    (see `Batch.epoch`) makes it raise Fenced."""
    # one tuple per prediction or coin, turned into one list per column by zip (in C); the numbers go as
    # rows of a 2-D array per type: asyncpg checks each element of a 1-D array for nesting, and encodes
    # a timestamp in 2.5 µs where its microseconds in an int8 row take 0.5
    prediction_columns = _columns(
        (
            p.event.mint, p.event.tx,
            [p.probability, p.row.price_open, p.row.price_high, p.row.price_low, p.row.price_close,
             p.row.market_cap_close, p.row.volume_sol],
            [_microseconds(p.event.ts), _TAG_CODE[p.tag],
             _NULL if p.row.phase_id_at_time is None else p.row.phase_id_at_time, p.event.seq, position],
        )
        for position, batch in enumerate(batches, start=1)
        for p in batch.predictions
    )  # fmt: skip
    state_columns = _columns(
        (
            mint, s.last_probability,
            [_microseconds(s.last_scan_ts),
             _NULL if s.ignore_until is None else _microseconds(s.ignore_until),
             _TAG_CODE[s.last_tag], _TAG_CODE[s.ignore_reason] if s.ignore_reason else 0,
             s.stored_negative, s.stored_positive, s.stored_alert, position],
        )
        for position, batch in enumerate(batches, start=1)
        for mint, s in batch.states.items()
    )  # fmt: skip
    models = [b.model for b in batches]
    try:
        stored = await conn.fetch(
            _statement(skip_repeats),
            [m.id for m in models],
            [m.version for m in models],
            [m.settings.alert_threshold for m in models],
            [_target_json(m.target) for m in models],
            [float(m.target.horizon_seconds) for m in models],
            TAG_NAMES,
            *(prediction_columns or [[]] * 4),
            *(state_columns or [[]] * 3),
            [b.cursor.tx for b in batches],
            [b.cursor.seq for b in batches],
            want_ids,
            [b.keeps_scan_cache for b in batches],
            [None if b.expected is None else b.expected.tx for b in batches],
            [None if b.expected is None else b.expected.seq for b in batches],
            [b.epoch for b in batches],
        )
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == FENCED_SQLSTATE:
            raise Fenced(str(exc)) from exc
        raise
    return {(r["model_id"], r["mint"], r["metric_ts"]): r["id"] for r in stored if r["id"] is not None}


def _statement(skip_repeats: bool) -> str:
    """The store statement that leaves repeated predictions out, or the one that fails on them."""
    return query("store_batch" if skip_repeats else "store_batch_failing_on_repeats")


def _microseconds(ts: datetime) -> int:
    """Microseconds since 1970, exactly."""
    return (ts - _EPOCH) // _MICROSECOND


@functools.cache
def _target_json(target: TargetSpec) -> str:
    """The target snapshot stored with each prediction, encoded once per target."""
    return json.dumps(target.to_dict())


def _columns(rows: Iterable[tuple[object, ...]]) -> list[list[object]]:
    """Rows as columns; [] when there are no rows."""
    return [list(column) for column in zip(*rows, strict=True)]


async def write_set_aside(conn: asyncpg.Connection, model_id: int, events: Sequence[SetAside]) -> None:
    """Record events set aside for a model (a repeat is ignored)."""
    await conn.execute(
        query("insert_set_aside"),
        model_id,
        [s.event.tx for s in events],
        [s.event.seq for s in events],
        [s.event.mint for s in events],
        [s.event.ts for s in events],
        [s.reason.value for s in events],
        [s.detail for s in events],
    )


async def set_aside_counts(conn: asyncpg.Connection, model_id: int) -> dict[str, int]:
    """Events set aside for a model, by reason."""
    return {r["reason"]: r["n"] for r in await conn.fetch(query("set_aside_counts"), model_id)}


async def load_states(conn: asyncpg.Connection, model_id: int) -> dict[str, CoinState]:
    """The model's whole scan cache, rebuilt from its predictions first if lanes stored without it."""
    if not await conn.fetchval(query("scan_cache_complete"), model_id):
        await conn.execute(query("rebuild_scan_state"), model_id)
    return {
        r["mint"]: CoinState(
            last_scan_ts=r["last_scan_ts"],
            last_probability=r["last_probability"],
            last_tag=Tag(r["last_tag"]),
            ignore_until=r["ignore_until"],
            ignore_reason=Tag(r["ignore_reason"]) if r["ignore_reason"] else None,
            stored_negative=r["stored_negative"],
            stored_positive=r["stored_positive"],
            stored_alert=r["stored_alert"],
        )
        for r in await conn.fetch(query("load_scan_state"), model_id)
    }


async def prediction_counts(conn: asyncpg.Connection, model_id: int) -> dict[str, int]:
    """Stored predictions of a model by tag."""
    return {r["tag"]: r["n"] for r in await conn.fetch(query("prediction_counts"), model_id)}
