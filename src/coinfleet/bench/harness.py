"""What every benchmark needs: a throwaway database, trained models, latency numbers (the feed: ingester)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np
import numpy.typing as npt

from coinfleet.bench.ingester import CommitLog
from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import Database, create_pool, resolve, throwaway_database
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.lanes.lane import Lane
from coinfleet.lanes.leases import LeaseKeeper
from coinfleet.lanes.stats import LaneStats
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import META_SUFFIX, ModelBundle, read_bundle, write_bundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.models.train import Algorithm, train_model
from coinfleet.targets import TargetSpec

BENCH_TARGET = TargetSpec(kind="change", direction="down", change_percent=1, horizon_seconds=60)


@asynccontextmanager
async def bench_database(settings: Settings) -> AsyncIterator[Database]:
    """A new migrated database on the configured server, dropped afterwards."""
    target = await resolve(settings)
    try:
        async with throwaway_database(target.dsn, "coinfleet_bench") as dsn:
            pool = await create_pool(dsn, max_size=max(settings.pool_max_size, 30))
            try:
                yield Database(pool=pool, dsn=dsn)
            finally:
                await pool.close()
    finally:
        if target.started_embedded:
            embedded.stop(settings.pgdata)


def market(rows: int, *, seed: int = 3) -> list[MetricRow]:
    """At least `rows` simulated market rows, oldest first."""
    coins = max(50, rows // 40)
    config = SimulatorConfig(
        coins=coins, seed=seed, launch_window_seconds=600, launches_per_minute=coins / 10
    )
    history = MarketSimulator(config, datetime(2026, 1, 1, tzinfo=UTC)).history(1800)
    if len(history) < rows:
        raise ValueError(f"the simulated market gave {len(history)} rows, fewer than the {rows} asked for")
    return history[:rows]


def bench_bundle(home: Path, algorithm: Algorithm = "xgboost") -> ModelBundle:
    """A model trained once on a simulated market and kept in $COINFLEET_HOME/bench-models."""
    folder = home / "bench-models"
    path = folder / (algorithm + META_SUFFIX)
    if not path.exists():
        trained = train_model(market(20_000, seed=17), algorithm=algorithm, target=BENCH_TARGET)
        write_bundle(folder, trained.to_bundle(algorithm))
    return read_bundle(path)


async def add_models(
    pool: asyncpg.Pool, bundle: ModelBundle, names: Sequence[str], **settings: object
) -> list[ModelRecord]:
    """Register and activate copies of a bundle that score every event (no scan interval)."""
    chosen = ModelSettings.model_validate({"min_scan_interval_seconds": 0, **settings})
    async with pool.acquire() as conn:
        return [
            await import_bundle(conn, replace(bundle, name=name), settings=chosen, activate=True)
            for name in names
        ]


def leased_supervisor(db: Database, settings: Settings) -> Supervisor:
    """A supervisor as `serve` and `worker` run one: its lanes hold leases, their batches are fenced."""
    leases = LeaseKeeper(db.pool, seconds=settings.lease_seconds, capacity=1)
    return Supervisor(pool=db.pool, dsn=db.dsn, settings=settings, leases=leases)


def reset_figures(lanes: Sequence[Lane]) -> dict[str, int]:
    """Start a measured window: forget old latencies; return prediction counts so far."""
    for lane in lanes:
        lane.stats.clear_latencies()
    return {lane.model.name: sum(lane.stats.predictions.values()) for lane in lanes}


def pooled_quantile(stats: Sequence[LaneStats], q: float, commits: CommitLog) -> float | None:
    """A quantile of the latencies from metric commit over the recent predictions of several lanes
    together, in milliseconds."""
    return quantile_ms(np.concatenate([commits.since_commit(s) for s in stats] or [np.empty(0)]), q)


def ratio(numerator: float | None, denominator: float | None, digits: int) -> float | None:
    """`numerator / denominator` rounded to `digits`; None when either is missing or the denominator 0."""
    return None if numerator is None or not denominator else round(numerator / denominator, digits)


def quantile_ms(seconds: npt.NDArray[np.float64], q: float) -> float | None:
    """A quantile of latencies in seconds, in milliseconds; None when there are none."""
    return None if not len(seconds) else 1000 * float(np.quantile(seconds, q))


async def wait_for_lanes(supervisor: Supervisor, count: int, timeout: float = 120) -> list[Lane]:
    """Until `count` lanes run; return them."""
    async with asyncio.timeout(timeout):
        while len(supervisor.lanes) < count:
            await asyncio.sleep(0.05)
    return supervisor.lanes


async def drain(supervisor: Supervisor, timeout: float) -> bool:
    """Wait until every lane has caught up; False if the timeout came first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await supervisor.refresh_lag()
        if all(lane.stats.lag_events == 0 for lane in supervisor.lanes):
            return True
        await asyncio.sleep(0.1)
    return False
