"""The benchmarks' ingester: a process of its own that feeds rows and logs when each insert committed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from coinfleet.bench.ingester import Ingester
from coinfleet.db.database import with_database
from coinfleet.lanes.stats import LaneStats
from support import market_rows


async def test_feeds_moved_rows_in_order_and_measures_from_their_commit(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    rows = market_rows(coins=5, seconds=120)[:90]
    async with Ingester(db_dsn, rows) as ingester:
        assert await ingester.feed(rate=300, seconds=30, count=40) == 40  # a backlog, then the rest
        assert await ingester.feed(40, rate=300, seconds=30) == 50
        assert await ingester.feed(90, rate=300, seconds=30) == 0  # nothing left after the end
    async with pool.acquire() as conn:
        stored = await conn.fetch('SELECT "timestamp" FROM coin_metrics')
        inserted = await conn.fetchval(
            "SELECT array_agg(extract(epoch FROM inserted_at)) FROM coinfleet_events"
        )
    assert len(stored) == 90  # no row twice
    newest = max(r["timestamp"] for r in stored)
    assert newest <= datetime.now(UTC)  # never ahead of the wall clock: lanes would set it aside
    assert datetime.now(UTC) - newest < timedelta(minutes=1)  # moved to the present, not 2026-01-01

    stats = LaneStats()
    stats.record_latencies(np.array(inserted, dtype=np.float64), time.time())
    since_commit = ingester.commits.since_commit(stats)
    assert len(since_commit) == 90
    assert np.all(since_commit >= 0)  # every row was committed before now
    assert np.all(since_commit < stats.latencies.values())  # and after its insert began


async def test_a_database_it_cannot_reach_is_a_clear_error(db_dsn: str) -> None:
    gone = with_database(db_dsn, "no_such_database")
    with pytest.raises(RuntimeError, match="ingester failed: cannot connect"):
        async with Ingester(gone, market_rows(coins=2, seconds=60)):
            pass
