"""A serving process killed with SIGKILL mid-run and restarted writes each prediction exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from coinfleet.feed.writer import insert_metrics
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import market_rows

pytestmark = pytest.mark.slow


async def start_serve(db_dsn: str, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "COINFLEET_BATCH_MAX_EVENTS": "40",
        "COINFLEET_POLL_INTERVAL_SECONDS": "0.2",
        "COINFLEET_LOG_LEVEL": "warning",
    }
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coinfleet", "serve", env=env, stdout=sink, stderr=sink
        )


async def count_predictions(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM coinfleet_predictions"))


async def test_killed_lane_resumes_without_loss_or_repeat(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    async with pool.acquire() as conn:
        await import_bundle(
            conn,
            replace(small_bundle, name="crashy"),
            settings=ModelSettings(min_scan_interval_seconds=0),
            activate=True,
        )
        rows = market_rows(coins=60, seconds=1200, seed=5)
        await insert_metrics(conn, rows)
    first = await start_serve(db_dsn, log)
    try:
        async with asyncio.timeout(60):
            while (done_at_kill := await count_predictions(pool)) == 0:
                await asyncio.sleep(0.01)
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        await first.wait()
    assert 0 < done_at_kill < len(rows), "the kill must land mid-run"
    second = await start_serve(db_dsn, log)
    try:
        async with asyncio.timeout(120):
            while await count_predictions(pool) < len(rows):
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
