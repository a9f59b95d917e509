"""A model that keeps crashing or hanging is quarantined; its neighbours keep scoring; resume loses nothing.

The loader below runs in the runner's child process, which imports this module by name.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import numpy as np
import numpy.typing as npt

from coinfleet.config import Settings
from coinfleet.features.cache import ObservationService
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.factory import ProcessRunnerFactory, RunnerFactory, runner_limits
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.formats import Predictor, load_predictor
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.process import ProcessRunner
from coinfleet.runners.protocol import Runner
from support import market_rows, until

FloatArray = npt.NDArray[np.float64]
HERE = str(Path(__file__).parent)
SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300, runner_max_failures=3)


class WhileFlagged:
    """The real model, except that it crashes or hangs while its flag file exists."""

    def __init__(self, inner: Predictor, mode: str, flag: str) -> None:
        self._inner = inner
        self._mode = mode
        self._flag = flag
        self.n_features = inner.n_features

    def predict_proba(self, x: FloatArray) -> FloatArray:
        if os.path.exists(self._flag):
            if self._mode == "crash":
                os.abort()
            time.sleep(3600)
        return self._inner.predict_proba(x)


def flagged_loader(mode: str, flag: str, fmt: str, artifact: bytes) -> Predictor:
    """Runs in the child."""
    return WhileFlagged(load_predictor(fmt, artifact), mode, flag)


def factory_with_faults(pool: asyncpg.Pool, faults: dict[str, str], flag: Path) -> RunnerFactory:
    """Process runners with ONNX; the models named in `faults` misbehave while `flag` exists."""
    default = ProcessRunnerFactory(pool=pool, observations=ObservationService(pool), compile_onnx=True)

    async def factory(model: ModelRecord, artifact: bytes) -> Runner:
        if model.name not in faults:
            return await default(model, artifact)
        args = (faults[model.name], str(flag), model.format, artifact)
        spec = LoaderSpec(function=f"{__name__}:flagged_loader", args=args, sys_path=(HERE,))
        runner = ProcessRunner(spec, name=model.name, limits=runner_limits(model.settings))
        await runner.start()
        return runner

    return factory


async def activate(pool: asyncpg.Pool, bundle: ModelBundle, name: str) -> ModelRecord:
    settings = ModelSettings(min_scan_interval_seconds=0, batch_timeout_seconds=0.5)
    async with pool.acquire() as conn:
        return await import_bundle(conn, replace(bundle, name=name), settings=settings, activate=True)


async def statuses(pool: asyncpg.Pool) -> dict[str, ModelRecord]:
    async with pool.acquire() as conn:
        return {m.name: m for m in await registry.list_models(conn)}


async def scored(pool: asyncpg.Pool, model: ModelRecord) -> list[tuple[str, object]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT mint, metric_ts FROM coinfleet_predictions WHERE model_id = $1", model.id
        )
    return [(r["mint"], r["metric_ts"]) for r in rows]


async def test_failing_models_are_quarantined_and_resume_from_their_cursor(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    flag = tmp_path / "misbehave"
    flag.touch()
    good = await activate(pool, small_bundle, "good")
    hangs = await activate(pool, small_bundle, "hangs")
    await activate(pool, small_bundle, "crashes")
    rows = market_rows(coins=10, seconds=200)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    factory = factory_with_faults(pool, {"hangs": "hang", "crashes": "crash"}, flag)
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS, runner_factory=factory)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: len(supervisor.lanes) == 3)
        lanes = {lane.model.name: lane for lane in supervisor.lanes}
        await until(lambda: [lane.model.name for lane in supervisor.lanes] == ["good"])
        await until(lambda: lanes["good"].stats.events == len(rows))
        models = await statuses(pool)
        assert lanes["hangs"].stats.errors["timeout"] == 3
        assert lanes["crashes"].stats.errors["crash"] == 3
        assert models["hangs"].status == "quarantined" and "timeout" in (models["hangs"].status_reason or "")
        assert models["crashes"].status == "quarantined" and "crash" in (
            models["crashes"].status_reason or ""
        )
        assert lanes["hangs"].stats.events == 0 and not await scored(pool, hangs)

        flag.unlink()
        async with pool.acquire() as conn:
            await registry.set_status(conn, "hangs", "active")  # what `coinfleet models resume` does
        await until(lambda: any(lane.model.name == "hangs" for lane in supervisor.lanes))
        resumed = next(lane for lane in supervisor.lanes if lane.model.name == "hangs")
        await until(lambda: resumed.stats.events == len(rows))
    finally:
        supervisor.stop()
        await task
    expected = sorted((r.mint, r.timestamp) for r in rows)
    assert sorted(await scored(pool, hangs)) == expected  # every event behind the cursor, once
    assert sorted(await scored(pool, good)) == expected
