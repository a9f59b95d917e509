"""A backtest gives the same predictions and outcomes, row for row, as live scoring of the same data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from coinfleet.config import Settings
from coinfleet.evaluation.rounds import drain, evaluation_loop, loop_config
from coinfleet.feed import live
from coinfleet.feed.recorded import read_recorded
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.service.backtest import caught_up, prediction_outcomes, run_backtest
from coinfleet.service.schemas import BacktestReport, Coverage
from support import activate, market_rows


def _settings(db_dsn: str) -> Settings:
    return Settings(
        database_url=db_dsn, poll_interval_seconds=0.2, batch_max_events=300, evaluation_grace_seconds=30
    )


async def _live(pool: asyncpg.Pool, db_dsn: str, settings: Settings, rows: list[MetricRow]) -> None:
    """What `serve` does while an ingester writes the rows: lanes and the evaluation loop side by side."""
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=settings)
    stop = asyncio.Event()
    lanes = asyncio.create_task(supervisor.run())
    evaluation = asyncio.create_task(evaluation_loop(pool, loop_config(settings), stop))
    try:
        await live.replay(pool, rows, speed=None)
        async with asyncio.timeout(90):
            await caught_up(pool)
    finally:
        supervisor.stop()
        stop.set()
        await asyncio.gather(lanes, evaluation)
    await drain(pool, loop_config(settings).rounds)


async def _compare(
    pool: asyncpg.Pool, db_dsn: str, bundle: ModelBundle, rows: list[MetricRow]
) -> BacktestReport:
    await activate(pool, bundle, "bt", min_scan_interval_seconds=0)
    settings = _settings(db_dsn)
    await _live(pool, db_dsn, settings, rows)
    async with pool.acquire() as conn:
        scored_live = await prediction_outcomes(conn)
    result = await run_backtest(settings, rows, models=["bt"])
    assert len(scored_live) > 100
    assert {r["status"] for r in scored_live} >= {"ok"}
    assert len(result.outcomes) == len(scored_live), (len(result.outcomes), len(scored_live), result.models)
    assert result.outcomes == scored_live
    (stats,) = result.models
    assert stats.predictions == len(scored_live)
    assert stats.evaluated == sum(1 for r in scored_live if r["status"] is not None)
    assert stats.pending == sum(1 for r in scored_live if r["status"] is None)
    return result


def _check_coverage(result: BacktestReport) -> Coverage:
    """Coverage adds up, and the former rule never judges more than the as-of rule."""
    (stats,), (coverage,), (rules,) = result.models, result.coverage, result.rules
    assert coverage.judged + coverage.no_data + coverage.invalid_price + coverage.pending == coverage.ended
    assert coverage.ended + coverage.running == stats.predictions
    assert rules.judged == coverage.judged == stats.by_status["ok"]
    assert rules.judged_former <= rules.judged
    return coverage


async def test_backtest_equals_live_on_a_simulated_market(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    _check_coverage(await _compare(pool, db_dsn, small_bundle, market_rows(coins=12, seconds=400, seed=3)))


async def test_backtest_equals_live_on_the_recorded_file(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, recorded_file: Path
) -> None:
    rows = read_recorded(recorded_file).rows[:1500]
    report = await _compare(pool, db_dsn, small_bundle, list(rows))
    coverage = _check_coverage(report)
    # no feed stall in these rows: every settled prediction is judged, coins that went quiet included
    assert coverage.no_data == 0 and coverage.judged / coverage.ended >= 0.95
    assert report.stalls == [] and report.grace_seconds == 30
