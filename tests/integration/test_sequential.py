"""The sequential baseline scores every event with every model, like the predecessor."""

from __future__ import annotations

import asyncio

import asyncpg

from coinfleet.bench.sequential import SequentialScorer, total_predictions, woken_scorer
from coinfleet.events.notifier import Signal
from coinfleet.feed.writer import insert_metrics
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import activate, market_rows


async def test_each_event_goes_through_every_model(pool: asyncpg.Pool, small_bundle: ModelBundle) -> None:
    for name in ("first", "second"):
        await activate(pool, small_bundle, name, min_scan_interval_seconds=0)
    scorer = SequentialScorer(pool=pool, signal=Signal(), poll_interval=0.05)
    await scorer.load()
    rows = market_rows(coins=4, seconds=120)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    task = asyncio.create_task(scorer.run())
    try:
        async with asyncio.timeout(60):
            while total_predictions(list(scorer.stats.values())) < 2 * len(rows):
                await asyncio.sleep(0.05)
    finally:
        scorer.stop()
        await task
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == 2 * len(rows)
    assert all(stats.latencies for stats in scorer.stats.values())


async def test_woken_scorer_scores_on_notify_not_on_its_poll(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    async with pool.acquire() as conn:
        await import_bundle(
            conn, small_bundle, settings=ModelSettings(min_scan_interval_seconds=0), activate=True
        )
    rows = market_rows(coins=2, seconds=30)
    # a poll far longer than the wait below: only the NOTIFY of the insert can wake the loop in time
    async with woken_scorer(pool, db_dsn, poll_interval=60) as scorer:
        task = asyncio.create_task(scorer.run())
        try:
            await asyncio.sleep(0.2)  # the loop has found nothing and sleeps on its signal
            async with pool.acquire() as conn:
                await insert_metrics(conn, rows)
            async with asyncio.timeout(20):
                while total_predictions(list(scorer.stats.values())) < len(rows):
                    await asyncio.sleep(0.05)
        finally:
            scorer.stop()
            await task
