"""Models start each on their own: a slow start delays no other model's start, scoring or settings, and a
model file that hangs or eats memory while it is checked holds up no lane."""

from __future__ import annotations

import asyncio
import pickle

import asyncpg
import pytest

from coinfleet.config import Settings
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.factory import RunnerFactory, inline_runner
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.compile import served_model
from coinfleet.models.importing import ImportRequest, import_file
from coinfleet.models.metadata import ModelMeta
from coinfleet.models.registry import ModelRecord
from coinfleet.models.sandbox import SandboxError, SandboxLimits
from coinfleet.runners.protocol import Runner
from support import activate, count, market_rows, until

SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300)


def slow_starts(name: str, gate: asyncio.Event, started: list[str]) -> RunnerFactory:
    """Runners start at once, except `name`'s, which waits for `gate` (a conversion that takes long)."""

    async def factory(model: ModelRecord, artifact: bytes) -> Runner:
        started.append(model.name)
        if model.name == name:
            await gate.wait()
        return inline_runner(model, artifact)

    return factory


def scored(supervisor: Supervisor, name: str, events: int) -> bool:
    return any(lane.model.name == name and lane.stats.events >= events for lane in supervisor.lanes)


async def test_a_slow_start_delays_no_other_model(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    gate, started = asyncio.Event(), list[str]()
    await activate(pool, small_bundle, "first", min_scan_interval_seconds=0)
    supervisor = Supervisor(
        pool=pool, dsn=db_dsn, settings=SETTINGS, runner_factory=slow_starts("slow", gate, started)
    )
    task = asyncio.create_task(supervisor.run())
    rows = market_rows(coins=10, seconds=120)
    try:
        await until(lambda: len(supervisor.lanes) == 1)
        await activate(pool, small_bundle, "slow", min_scan_interval_seconds=0)
        await until(lambda: "slow" in started)
        await activate(pool, small_bundle, "third", min_scan_interval_seconds=0)
        async with pool.acquire() as conn:
            await insert_metrics(conn, rows)
            await registry.update_settings(
                conn, "first", (await registry.get(conn, "first")).settings.model_copy(update={"weight": 3.0})
            )
        # while "slow" is still starting: the first keeps scoring, the third starts and scores, settings apply
        await until(lambda: scored(supervisor, "first", len(rows)) and scored(supervisor, "third", len(rows)))
        await until(lambda: supervisor.lanes[0].model.settings.weight == 3.0)
        assert "slow" not in [lane.model.name for lane in supervisor.lanes]
        gate.set()
        await until(lambda: scored(supervisor, "slow", len(rows)))
    finally:
        supervisor.stop()
        await task


async def test_stopping_while_a_model_starts_returns(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    started = list[str]()
    await activate(pool, small_bundle, "never")
    supervisor = Supervisor(
        pool=pool,
        dsn=db_dsn,
        settings=SETTINGS,
        runner_factory=slow_starts("never", asyncio.Event(), started),
    )
    task = asyncio.create_task(supervisor.run())
    await until(lambda: started == ["never"])
    supervisor.stop()
    async with asyncio.timeout(30):
        await task
    assert not supervisor.lanes


@pytest.mark.slow
async def test_a_conversion_cut_off_by_its_limits_serves_the_original(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    model = await activate(pool, small_bundle, "cut")
    # no child imports its libraries in a millisecond: the conversion is stopped by its timeout
    served = await served_model(
        pool, model, small_bundle.artifact, limits=SandboxLimits(timeout_seconds=0.001, memory_limit_mb=512)
    )
    assert not served.compiled and served.artifact == small_bundle.artifact
    assert "took longer than" in str(served.reason)
    async with pool.acquire() as conn:  # a timeout may pass next time: not remembered
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_compiled") == 0
    again = await served_model(pool, model, small_bundle.artifact, limits=SandboxLimits())
    assert again.compiled


def _pickle_running(code: str) -> bytes:
    """A pickle whose loading runs `code` (a trusted file that misbehaves)."""

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (exec, (code,))

    return pickle.dumps(Payload(), protocol=4)


@pytest.mark.slow
async def test_a_file_that_hangs_or_eats_memory_is_refused_while_another_model_scores_and_a_third_starts(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "first", min_scan_interval_seconds=0)
    # lanes score in this process: an import that held its event loop would stop them
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS, runner_factory=inline_runner)
    task = asyncio.create_task(supervisor.run())
    limits = SandboxLimits(timeout_seconds=45, memory_limit_mb=256)
    bad = {
        "timeout": _pickle_running("import time; time.sleep(600)"),
        "memory": _pickle_running("blocks = []\nwhile True: blocks.append(bytearray(2**26))"),
    }

    async def check(content: bytes) -> str:
        meta = ModelMeta(features=small_bundle.features, target=small_bundle.target)
        request = ImportRequest(data=content, filename="bad.pkl", meta=meta, trusted=True, activate=True)
        async with pool.acquire() as conn:
            with pytest.raises(SandboxError) as refused:
                await import_file(conn, request, limits=limits)
        return refused.value.reason

    rows = market_rows(coins=10, seconds=120)
    try:
        await until(lambda: len(supervisor.lanes) == 1)
        checks = {reason: asyncio.create_task(check(content)) for reason, content in bad.items()}
        half = len(rows) // 2
        async with pool.acquire() as conn:
            await insert_metrics(conn, rows[:half])
        await activate(pool, small_bundle, "third", min_scan_interval_seconds=0)
        await until(lambda: len(supervisor.lanes) == 2)  # a new model starts at the stream's head
        async with pool.acquire() as conn:
            await insert_metrics(conn, rows[half:])
        await until(
            lambda: scored(supervisor, "first", len(rows)) and scored(supervisor, "third", len(rows) - half)
        )
        assert not checks["timeout"].done()  # both scored every row while the hanging file was checked
        assert {reason: await checked for reason, checked in checks.items()} == {
            "timeout": "timeout",
            "memory": "memory",
        }
        assert sorted(lane.model.name for lane in supervisor.lanes) == ["first", "third"]
    finally:
        supervisor.stop()
        await task
    assert await count(pool, "SELECT count(*) FROM coinfleet_models") == 2  # the refused files left nothing
