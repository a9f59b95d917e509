"""Backtest: replay recorded rows through the real lanes and evaluation in a throwaway database.

The models (default: every active one) are copied from the main registry; the rows are replayed as
fast as possible while the lanes and the evaluation loop run exactly as in `serve`, then the
remaining due predictions are evaluated at the rows' last timestamp. Predictions whose horizon runs
past the end of the rows stay pending (counted, never guessed). Besides the statistics it reports each
model's coverage (judged / no_data / pending of the predictions whose horizon ended inside the rows)
and its rates as of the horizon end beside the former first-row-in-grace rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, resolve, throwaway_database
from coinfleet.db.sql import query
from coinfleet.errors import ConfigError, ModelNotFound
from coinfleet.evaluation.outcomes import FeedTimes
from coinfleet.evaluation.rounds import LoopConfig, data_clock, drain, evaluation_loop, round_config
from coinfleet.feed import live
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord, NewModel
from coinfleet.service.common import Db, as_dict
from coinfleet.service.quality import coverage, rule_comparison
from coinfleet.service.schemas import BacktestReport, FeedStall
from coinfleet.service.stats import statistics

#: seconds between checks whether every lane has caught up with the replay
CATCH_UP_POLL_SECONDS = 0.2


async def chosen_models(source: Db, names: Sequence[str]) -> list[ModelRecord]:
    """The named models (default: every active one); ModelNotFound for a wrong name, ConfigError when
    there is nothing to backtest."""
    known = {m.name: m for m in await registry.list_models(source)}
    for name in names:
        if name not in known:
            raise ModelNotFound(f"no model named {name!r}; `coinfleet models list` shows the names")
    models = [known[n] for n in names] if names else [m for m in known.values() if m.status == "active"]
    if not models:
        raise ConfigError(
            "no active model to backtest — activate one (`coinfleet models activate NAME`) or name one "
            "with --model"
        )
    return models


async def copy_models(source: Db, target: Db, models: Sequence[ModelRecord]) -> list[str]:
    """Register the models in the target database, active."""
    for model in models:
        new = NewModel(
            name=model.name,
            algorithm=model.algorithm,
            format=model.format,
            artifact=await registry.load_artifact(source, model.id),
            features=model.features,
            target=model.target,
            settings=model.settings,
            training_metrics=model.training_metrics,
        )
        await registry.register(target, new)
        await registry.set_status(target, model.name, "active")
    return [m.name for m in models]


async def prediction_outcomes(db: Db) -> list[dict[str, Any]]:
    """Every prediction and its outcome, times in seconds after the first metric row."""
    return [as_dict(r) for r in await db.fetch(query("prediction_outcomes"))]


async def score_and_evaluate(
    pool: asyncpg.Pool,
    dsn: str,
    settings: Settings,
    rows: Sequence[MetricRow],
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """Replay the rows as fast as possible beside the lanes and the evaluation loop, as `serve` runs them."""
    supervisor = Supervisor(pool=pool, dsn=dsn, settings=settings)
    stop_evaluation = asyncio.Event()
    config = LoopConfig(rounds=round_config(settings), interval_seconds=0.2, stall_seconds=None)
    lanes = asyncio.create_task(supervisor.run())
    evaluation = asyncio.create_task(evaluation_loop(pool, config, stop_evaluation))
    try:
        await live.replay(pool, rows, speed=None, on_rows=on_rows)
        await caught_up(pool)
    finally:
        supervisor.stop()
        stop_evaluation.set()
        await asyncio.gather(lanes, evaluation)
    await drain(pool, config.rounds)


async def caught_up(db: Db) -> None:
    """Wait until every active model's committed cursor is past the last stored event."""
    while True:
        if not await db.fetchval(query("active_models_behind")):
            return
        await asyncio.sleep(CATCH_UP_POLL_SECONDS)


def feed_stalls(rows: Sequence[MetricRow], grace_seconds: float) -> list[FeedStall]:
    """The rows' silences longer than the grace period, in the rows' own times: a horizon that ends in
    one cannot be judged by any rule (`no_data`), which bounds a backtest's coverage."""
    feed = FeedTimes.of([row.timestamp.timestamp() for row in rows])
    return [
        FeedStall(
            last_row=datetime.fromtimestamp(before, UTC),
            next_row=datetime.fromtimestamp(after, UTC),
            seconds=after - before,
        )
        for before, after in feed.stalls(grace_seconds)
    ]


async def _report(db: Db, rows: Sequence[MetricRow], grace_seconds: float) -> BacktestReport:
    """Statistics, outcomes, coverage at the last row's time, the former rule beside the as-of one and
    the rows' feed stalls."""
    clock = await data_clock(db)
    return BacktestReport(
        rows=len(rows),
        grace_seconds=grace_seconds,
        stalls=feed_stalls(rows, grace_seconds),
        models=(await statistics(db)).models,
        outcomes=await prediction_outcomes(db),
        coverage=[] if clock is None else await coverage(db, clock),
        rules=await rule_comparison(db),
    )


async def run_backtest(
    settings: Settings,
    rows: Sequence[MetricRow],
    *,
    models: Sequence[str] = (),
    on_rows: Callable[[int], None] | None = None,
) -> BacktestReport:
    """Copy the models, replay the rows through lanes and evaluation in a throwaway database on the same
    server, and report statistics and every prediction's outcome; ConfigError for an unknown model."""
    target = await resolve(settings)
    try:
        source = await asyncpg.connect(target.dsn)
        try:
            chosen = await chosen_models(source, models)  # before the throwaway database: a typo ends here
        finally:
            await source.close()
        async with throwaway_database(target.dsn, "coinfleet_backtest") as dsn:
            pool = await create_pool(dsn, max_size=settings.pool_max_size)
            try:
                source = await asyncpg.connect(target.dsn)
                try:
                    async with pool.acquire() as conn:
                        await copy_models(source, conn, chosen)
                finally:
                    await source.close()
                await score_and_evaluate(pool, dsn, settings, rows, on_rows)
                return await _report(pool, rows, settings.evaluation_grace_seconds)
            finally:
                await pool.close()
    finally:
        if target.started_embedded:
            embedded.stop(settings.pgdata)
