"""Reading coin events in commit-safe order: the (tx, seq) cursor of DESIGN §3."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from coinfleet.db.sql import query
from coinfleet.metrics import MetricRow

#: what a timestamptz of 'infinity' / '-infinity' reads as (asyncpg hands them out as naive datetimes)
INFINITY = datetime.max.replace(tzinfo=UTC)
NEGATIVE_INFINITY = datetime.min.replace(tzinfo=UTC)


def aware(ts: datetime) -> datetime:
    """A timestamptz as read: ±infinity (the only naive values asyncpg returns) as INFINITY and
    NEGATIVE_INFINITY, so that every time compares with every other."""
    if ts.tzinfo is not None:
        return ts
    return INFINITY if ts == datetime.max else NEGATIVE_INFINITY


def is_finite(ts: datetime) -> bool:
    """Whether a time read by `aware` was a real time, not ±infinity."""
    return NEGATIVE_INFINITY < ts < INFINITY


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class Cursor:
    """The last event a model has fully handled."""

    tx: int
    seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """One inserted `coin_metrics` row, identified by its coin and bar time."""

    tx: int
    seq: int
    mint: str
    ts: datetime  #: the metric row's bar time
    inserted_at: datetime  #: when the row was inserted (start of the lane's latency)

    @property
    def cursor(self) -> Cursor:
        """The cursor that marks this event as handled."""
        return Cursor(tx=self.tx, seq=self.seq)


async def read_events(conn: asyncpg.Connection, after: Cursor, limit: int) -> list[Event]:
    """Up to `limit` finished events after `after`, oldest first; never skips a late commit."""
    rows = await conn.fetch(query("read_events"), after.tx, after.seq, limit)
    return [
        Event(tx=r["tx"], seq=r["seq"], mint=r["mint"], ts=aware(r["ts"]), inserted_at=r["inserted_at"])
        for r in rows
    ]


async def read_events_with_rows(
    conn: asyncpg.Connection, after: Cursor, limit: int
) -> tuple[list[Event], list[MetricRow | None]]:
    """`read_events`, and each event's metric row (None when it is gone)."""
    events: list[Event] = []
    rows: list[MetricRow | None] = []
    for r in await conn.fetch(query("read_events_with_rows"), after.tx, after.seq, limit):
        ts = aware(r["event_ts"])
        events.append(
            Event(tx=r["tx"], seq=r["seq"], mint=r["event_mint"], ts=ts, inserted_at=r["inserted_at"])
        )
        rows.append(_metric_row(r) if r["has_row"] else None)
    return events, rows


def _metric_row(record: asyncpg.Record) -> MetricRow:
    # a row dated ±infinity reaches the lanes too
    return MetricRow.from_mapping({**record, "timestamp": aware(record["timestamp"])})


async def load_cursor(conn: asyncpg.Connection, model_id: int) -> Cursor:
    """The model's cursor, created at the current horizon if it has none yet."""
    row = await conn.fetchrow(query("get_cursor"), model_id)
    if row is None:
        await conn.execute(query("reset_cursor_to_now"), model_id)
        row = await conn.fetchrow(query("get_cursor"), model_id)
    assert row is not None
    return Cursor(tx=row["tx"], seq=row["seq"])


async def reset_cursor_to_now(conn: asyncpg.Connection, model_id: int) -> None:
    """Make the model skip every event already stored."""
    await conn.execute(query("reset_cursor_to_now"), model_id)


async def events_behind(conn: asyncpg.Connection, cursor: Cursor) -> int:
    """How many stored events lie after the cursor."""
    return int(await conn.fetchval(query("count_events_after"), cursor.tx, cursor.seq))


async def oldest_unread_ts(conn: asyncpg.Connection, cursor: Cursor) -> datetime | None:
    """Metric time of the oldest event after the cursor."""
    value: datetime | None = await conn.fetchval(query("oldest_unread_event_ts"), cursor.tx, cursor.seq)
    return value


async def prune_events(conn: asyncpg.Connection) -> int:
    """Delete events that every active or quarantined model has handled; return how many."""
    status: str = await conn.execute(query("prune_events"))
    return int(status.split()[-1])


async def horizon_age_seconds(conn: asyncpg.Connection) -> float:
    """Age of the oldest open transaction in the cluster: it holds every lane back."""
    return float(await conn.fetchval(query("horizon_age_seconds")))


async def current_horizon(conn: asyncpg.Connection) -> Cursor:
    """A cursor before every event that has not finished yet (the start for "from now on")."""
    return Cursor(tx=int(await conn.fetchval(query("current_horizon"))), seq=0)
