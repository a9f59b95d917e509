"""Writing `coin_metrics` rows exactly as an ingester would (one COPY per batch), and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from coinfleet.db.sql import query
from coinfleet.metrics import METRIC_COLUMNS, MetricRow


async def insert_metrics(conn: asyncpg.Connection, rows: Sequence[MetricRow]) -> int:
    """Insert the rows in one statement (so one NOTIFY); return how many."""
    if not rows:
        return 0
    await conn.copy_records_to_table(
        "coin_metrics", records=[r.as_tuple() for r in rows], columns=list(METRIC_COLUMNS)
    )
    return len(rows)


async def metrics_stored(conn: asyncpg.Connection, rows: Sequence[MetricRow]) -> bool:
    """Whether the rows of one `insert_metrics` call are stored (it stores all of them or none)."""
    found: bool = await conn.fetchval(
        query("metrics_stored"), [r.mint for r in rows], [r.timestamp for r in rows]
    )
    return found


async def read_metrics(conn: asyncpg.Connection, since: datetime) -> list[MetricRow]:
    """Every row at or after `since`, oldest first; rows that are not valid metric rows are skipped."""
    rows = []
    for record in await conn.fetch(query("read_metrics_since"), since):
        try:
            rows.append(metric_row(record))
        except (TypeError, ValueError):
            continue
    return rows


def metric_row(record: asyncpg.Record) -> MetricRow:
    """A MetricRow from a record holding every coin_metrics column."""
    return MetricRow.from_mapping(record)
