"""Versions: replace adds one (a refused file keeps the old), promote switches while scoring with no
event lost or scored twice, export gives what import takes back; rename and delete."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from coinfleet.config import Settings
from coinfleet.errors import ModelExists, ModelLoadError, ModelNotFound
from coinfleet.evaluation.rounds import drain, round_config
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import ImportRequest, import_bundle
from coinfleet.models.metadata import ModelMeta
from coinfleet.models.registry import ModelRecord
from coinfleet.models.sandbox import SandboxLimits
from coinfleet.models.settings import ModelSettings
from coinfleet.service import model_admin, versions
from coinfleet.service.importing import import_file, request_from_path
from support import market_rows, until

pytestmark = pytest.mark.slow
LIMITS = SandboxLimits(timeout_seconds=120, memory_limit_mb=1024)
SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=50, runner="inline")


async def _model(pool: asyncpg.Pool, bundle: ModelBundle, name: str = "m") -> ModelRecord:
    async with pool.acquire() as conn:
        settings = ModelSettings(min_scan_interval_seconds=0)
        return await import_bundle(conn, replace(bundle, name=name), settings=settings, activate=True)


def _file(bundle: ModelBundle, data: bytes | None = None) -> ImportRequest:
    return ImportRequest(
        data=bundle.artifact if data is None else data, filename="new.json", meta=ModelMeta()
    )


async def test_replace_adds_a_version_and_a_refused_file_keeps_the_old(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    await _model(pool, small_bundle)
    async with pool.acquire() as conn:
        with pytest.raises(ModelLoadError, match="not a valid xgboost-json"):
            await versions.replace_model(conn, "m", _file(small_bundle, b"{broken"), limits=LIMITS)
        assert (await registry.get(conn, "m")).version == 1
        assert len(await registry.list_versions(conn, "m")) == 1
        replaced = await versions.replace_model(conn, "m", _file(small_bundle), limits=LIMITS)
        assert replaced.version == 2
        assert tuple(replaced.features) == small_bundle.features
        assert replaced.target.description == small_bundle.target.describe()
        assert (await versions.promote(conn, "m", 1)).version == 1
        with pytest.raises(ModelNotFound, match="its versions: 1, 2"):
            await versions.promote(conn, "m", 7)


async def test_export_writes_what_import_takes_back(
    pool: asyncpg.Pool, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    original = await _model(pool, small_bundle, "exported")
    async with pool.acquire() as conn:
        path = await versions.export_model(conn, "exported", tmp_path)
        await model_admin.delete_model(conn, "exported", with_history=False)
        settings = Settings(model_check_timeout_seconds=120, model_check_memory_mb=1024)
        request = request_from_path(path, flags=ModelMeta(), settings=settings)
        back = await import_file(conn, request, limits=LIMITS)
    assert back.name == "exported" and back.id != original.id  # the deleted model's name was free again
    assert back.sha256 == original.artifact_sha256
    assert (tuple(back.features), back.format) == (original.features, original.format)
    assert back.target.description == original.target.describe()


async def test_rename_keeps_everything_and_refuses_a_taken_name(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    first = await _model(pool, small_bundle, "first")
    await _model(pool, small_bundle, "second")
    async with pool.acquire() as conn:
        renamed = await versions.rename_model(conn, "first", "primary")
        assert (renamed.id, renamed.version) == (first.id, first.version)
        assert renamed.settings == first.settings.public()
        with pytest.raises(ModelExists, match="exists already"):
            await versions.rename_model(conn, "primary", "second")
        with pytest.raises(ModelNotFound):
            await registry.get(conn, "first")


async def _predictions(pool: asyncpg.Pool, model_id: int) -> dict[int, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT model_version, count(*) AS n FROM coinfleet_predictions WHERE model_id = $1 GROUP BY 1",
            model_id,
        )
    return {r["model_version"]: r["n"] for r in rows}


async def test_replace_and_promote_while_scoring_lose_no_event_and_score_none_twice(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    model = await _model(pool, small_bundle)
    rows = market_rows(coins=20, seconds=600, seed=4)
    chunks = [rows[i : i + 100] for i in range(0, len(rows), 100)]
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: len(supervisor.lanes) == 1)

        switched = [asyncio.Event(), asyncio.Event()]  # serving version 2; back on version 1

        async def feed() -> None:
            # events keep coming while versions switch; each third waits until its version serves
            for i, chunk in enumerate(chunks):
                if i in (len(chunks) // 3, 2 * len(chunks) // 3):
                    await switched[i * 3 // len(chunks) - 1].wait()
                async with pool.acquire() as conn:
                    await insert_metrics(conn, chunk)
                await asyncio.sleep(0.05)

        def serving(version: int) -> bool:
            return bool(supervisor.lanes) and supervisor.lanes[0].model.version == version

        feeding = asyncio.create_task(feed())
        async with pool.acquire() as conn:
            await versions.replace_model(conn, "m", _file(small_bundle), limits=LIMITS)
            await until(lambda: serving(2))
            switched[0].set()
            await until(lambda: serving(2) and supervisor.lanes[0].stats.events > 0)  # the new lane scores
            await versions.promote(conn, "m", 1)
            await until(lambda: serving(1))
            switched[1].set()
        await feeding

        async def all_scored() -> bool:
            return sum((await _predictions(pool, model.id)).values()) >= len(rows)

        async with asyncio.timeout(120):
            while not await all_scored():
                await asyncio.sleep(0.2)
    finally:
        supervisor.stop()
        await task
    by_version = await _predictions(pool, model.id)
    assert sum(by_version.values()) == len(rows)  # every event once: none lost, none twice
    assert set(by_version) == {1, 2}  # each version scored a part of the stream


async def test_a_shadow_scores_beside_the_live_version_without_alerts_and_promote_switches(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    live = await _model(pool, small_bundle)
    async with pool.acquire() as conn:
        await registry.update_settings(
            conn, "m", live.settings.model_copy(update={"webhook_url": "http://127.0.0.1:9/hook"})
        )
    rows = market_rows(coins=15, seconds=600, seed=6)
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: len(supervisor.lanes) == 1)
        async with pool.acquire() as conn:
            shadow = await versions.replace_model(conn, "m", _file(small_bundle), limits=LIMITS, shadow=True)
            assert (shadow.name, shadow.version, shadow.status) == ("m.shadow", 2, "active")
            assert shadow.settings["webhook_enabled"] is False
            assert (await registry.get(conn, "m")).version == 1  # the live version serves on
        await until(lambda: len(supervisor.lanes) == 2)
        async with pool.acquire() as conn:
            await insert_metrics(conn, rows)
        await until(lambda: all(lane.stats.events >= len(rows) for lane in supervisor.lanes))
        await drain(pool, round_config(SETTINGS))
        async with pool.acquire() as conn:
            live_side, shadow_side = await versions.compare(conn, "m")
            alerts = await conn.fetch("SELECT model_id, count(*) FROM coinfleet_alerts GROUP BY 1")
            promoted = await versions.promote(conn, "m", 2)
        await until(lambda: [(x.model.name, x.model.version) for x in supervisor.lanes] == [("m", 2)])
    finally:
        supervisor.stop()
        await task
    assert (live_side.side, live_side.version, shadow_side.side, shadow_side.version) == (
        "live",
        1,
        "shadow",
        2,
    )
    assert live_side.events == shadow_side.events == len(rows)
    assert live_side.evaluated == shadow_side.evaluated > 0
    assert live_side.hit_rate == shadow_side.hit_rate is not None  # the same file: the same results
    # the live model sends every prediction (send mode "all"), the shadow none
    assert {r["model_id"] for r in alerts} == {live.id} and shadow.id != live.id
    assert promoted.version == 2
