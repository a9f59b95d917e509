"""A serving process killed with SIGKILL mid-run and restarted writes each prediction exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from pathlib import Path

import asyncpg
import pytest

from coinfleet.feed.writer import insert_metrics
from coinfleet.models.bundle import ModelBundle
from support import activate, count, market_rows, start_serve

pytestmark = pytest.mark.slow


def predictions(pool: asyncpg.Pool) -> Awaitable[int]:
    return count(pool, "SELECT count(*) FROM coinfleet_predictions")


async def start(db_dsn: str, log: Path) -> asyncio.subprocess.Process:
    return await start_serve(
        db_dsn, log, batch_max_events="40", poll_interval_seconds="0.2", log_level="warning"
    )


async def test_killed_lane_resumes_without_loss_or_repeat(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    await activate(pool, small_bundle, "crashy", min_scan_interval_seconds=0)
    rows = market_rows(coins=60, seconds=1200, seed=5)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    first = await start(db_dsn, log)
    try:
        async with asyncio.timeout(60):
            while (done_at_kill := await predictions(pool)) == 0:
                await asyncio.sleep(0.01)
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        await first.wait()
    assert 0 < done_at_kill < len(rows), "the kill must land mid-run"
    second = await start(db_dsn, log)
    try:
        async with asyncio.timeout(120):
            while await predictions(pool) < len(rows):
                assert second.returncode is None, log.read_text()
                await asyncio.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()
    async with pool.acquire() as conn:
        distinct = await conn.fetchval("SELECT count(DISTINCT (mint, metric_ts)) FROM coinfleet_predictions")
        counted = await conn.fetchval("SELECT sum(stored_predictions) FROM coinfleet_cursors")
    assert distinct == len({(r.mint, r.timestamp) for r in rows}) == len(rows)
    assert counted == len(rows), "a batch applied twice would count its predictions twice"
