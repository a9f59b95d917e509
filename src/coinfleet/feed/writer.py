"""Writing `coin_metrics` rows exactly as an ingester would (one COPY per batch)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from coinfleet.metrics import METRIC_COLUMNS, MetricRow


async def insert_metrics(conn: asyncpg.Connection, rows: Sequence[MetricRow]) -> int:
    """Insert the rows in one statement (so one NOTIFY); return how many."""
    if not rows:
        return 0
    await conn.copy_records_to_table(
        "coin_metrics", records=[r.as_tuple() for r in rows], columns=list(METRIC_COLUMNS)
    )
    return len(rows)
