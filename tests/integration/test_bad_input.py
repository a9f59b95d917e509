"""Bad input fails alone: a lost commit, a poison row, impossible timestamps, a broken settings row."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from coinfleet.config import Settings
from coinfleet.errors import SettingError
from coinfleet.evaluation.rounds import FeedClock, RoundConfig, data_clock, run_round
from coinfleet.feed.live import shifted
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.factory import inline_runner
from coinfleet.lanes.store import set_aside_counts
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.protocol import InlineRunner, Runner
from coinfleet.service import models as service_models
from support import activate, market_rows

SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300, runner="inline")
#: a market cap no simulated row has: the poison runner fails on the row that carries it
POISON_CAP = 4242.0


async def fetchval(pool: asyncpg.Pool, sql: str, *args: object) -> object:
    async with pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def until_caught_up(pool: asyncpg.Pool, timeout: float = 60) -> None:
    """Until every active model's cursor is past the last event."""
    sql = """SELECT count(*) FROM coinfleet_cursors c JOIN coinfleet_models m ON m.id = c.model_id
             WHERE m.status = 'active' AND EXISTS (
                 SELECT FROM coinfleet_events e WHERE (e.tx, e.seq) > (c.tx, c.seq))"""
    async with asyncio.timeout(timeout):
        while await fetchval(pool, sql):
            await asyncio.sleep(0.05)


async def predictions(pool: asyncpg.Pool, model_id: int) -> set[tuple[str, datetime]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT mint, metric_ts FROM coinfleet_predictions WHERE model_id = $1", model_id
        )
    return {(r["mint"], r["metric_ts"]) for r in rows}


async def insert(pool: asyncpg.Pool, rows: list[MetricRow]) -> None:
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)


@pytest.fixture
async def running(pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[Callable[..., Supervisor]]:
    """Starts a supervisor (with an optional runner factory) and stops it after the test."""
    tasks: list[tuple[Supervisor, asyncio.Task[None]]] = []

    def start(factory: Callable[[ModelRecord, bytes], Runner] = inline_runner) -> Supervisor:
        supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS, runner_factory=factory)
        tasks.append((supervisor, asyncio.create_task(supervisor.run())))
        return supervisor

    yield start
    for supervisor, task in tasks:
        supervisor.stop()
        await task


async def test_a_cursor_rolled_back_by_a_crash_makes_its_lane_score_those_events_again(
    pool: asyncpg.Pool, small_bundle: ModelBundle, running: Callable[..., Supervisor]
) -> None:
    model = await activate(pool, small_bundle, "rolled", min_scan_interval_seconds=0)
    rows = market_rows(coins=12, seconds=300, seed=2)
    first, second = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    running()
    await insert(pool, first)
    await until_caught_up(pool)
    # what a crash that lost the lane's last unflushed commits leaves: the cursor and predictions of
    # the last events gone, while the lane's copy of its cursor is still past them
    async with pool.acquire() as conn, conn.transaction():
        lost = await conn.fetch(
            "SELECT tx, seq FROM coinfleet_events ORDER BY tx DESC, seq DESC LIMIT 1 OFFSET 20"
        )
        await conn.execute(
            "DELETE FROM coinfleet_predictions WHERE model_id = $1 AND (event_tx, event_seq) > ($2, $3)",
            model.id, lost[0]["tx"], lost[0]["seq"],
        )  # fmt: skip
        await conn.execute(
            "UPDATE coinfleet_cursors SET tx = $2, seq = $3 WHERE model_id = $1",
            model.id,
            lost[0]["tx"],
            lost[0]["seq"],
        )
    assert len(await predictions(pool, model.id)) == len(first) - 20
    await insert(pool, second)
    await until_caught_up(pool)
    assert await predictions(pool, model.id) == {(r.mint, r.timestamp) for r in rows}


class PoisonRunner:
    """The real model, except that it raises (or answers NaN) on any batch holding the poison row."""

    def __init__(self, inner: Runner, calls: list[int], *, nan: bool) -> None:
        self._inner = inner
        self._calls = calls  #: batches that met the poison row (shared by every runner made)
        self._nan = nan

    def expected_cpu_seconds(self, rows: int) -> float | None:
        return None

    async def predict(
        self, features: np.ndarray, *, on_answer: Callable[[], None] | None = None
    ) -> np.ndarray:
        poisoned = np.any(features == np.float32(POISON_CAP), axis=1)
        if not poisoned.any():
            return await self._inner.predict(features)
        self._calls.append(len(features))
        if not self._nan:
            raise ValueError("model cannot take this row")
        probabilities = await self._inner.predict(features)
        probabilities[poisoned] = np.nan
        return probabilities

    async def close(self) -> None:
        await self._inner.close()


@pytest.mark.parametrize("nan", [False, True], ids=["raises", "answers-nan"])
async def test_a_poison_row_is_set_aside_for_that_model_only_and_resume_never_meets_it_again(
    pool: asyncpg.Pool, small_bundle: ModelBundle, running: Callable[..., Supervisor], nan: bool
) -> None:
    fragile = await activate(pool, small_bundle, "fragile", min_scan_interval_seconds=0)
    sturdy = await activate(pool, small_bundle, "sturdy", min_scan_interval_seconds=0)
    poisoned: list[int] = []

    def factory(model: ModelRecord, artifact: bytes) -> Runner:
        runner = InlineRunner.from_artifact(model.format, artifact)
        return PoisonRunner(runner, poisoned, nan=nan) if model.name == "fragile" else runner

    rows = market_rows(coins=12, seconds=300, seed=3)
    poison = replace(rows[150], market_cap_close=POISON_CAP)
    rows[150] = poison
    running(factory)
    await insert(pool, rows)
    await until_caught_up(pool)
    everything = {(r.mint, r.timestamp) for r in rows}
    assert await predictions(pool, sturdy.id) == everything
    assert await predictions(pool, fragile.id) == everything - {(poison.mint, poison.timestamp)}
    assert (await service_models.show_model(pool, "fragile")).set_aside == {"model_failed": 1}
    listed = {m.name: m.set_aside for m in await service_models.list_models(pool)}
    assert listed == {"fragile": {"model_failed": 1}, "sturdy": {}}
    async with pool.acquire() as conn:
        detail = await conn.fetchval("SELECT detail FROM coinfleet_set_aside WHERE model_id = $1", fragile.id)
        assert ("bad_output" if nan else "model cannot take this row") in detail
        assert (await registry.get(conn, "fragile")).status == "active"
        # quarantine and resume: the lane starts again at its cursor, past the set-aside event
        await registry.set_status(conn, "fragile", "quarantined", "by the test")
    met = len(poisoned)
    await asyncio.sleep(3 * SETTINGS.poll_interval_seconds)
    async with pool.acquire() as conn:
        await registry.set_status(conn, "fragile", "active")
    later = shifted(market_rows(coins=4, seconds=60, seed=9), rows[-1].timestamp + timedelta(seconds=1))
    await insert(pool, later)
    await until_caught_up(pool)
    assert {(r.mint, r.timestamp) for r in later} <= await predictions(pool, fragile.id)
    assert len(poisoned) == met, "resume met the poison row again"


async def test_rows_from_the_future_and_at_infinity_are_set_aside_and_are_no_clock(
    pool: asyncpg.Pool, small_bundle: ModelBundle, running: Callable[..., Supervisor]
) -> None:
    model = await activate(pool, small_bundle, "clocked", min_scan_interval_seconds=5)
    now = datetime.now(UTC)
    rows = shifted(market_rows(coins=6, seconds=240, seed=4), now - timedelta(seconds=300))
    first, second = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    running()
    await insert(pool, first)
    await until_caught_up(pool)
    coin = first[-1].mint
    ahead = replace(first[-1], timestamp=now + timedelta(days=1))
    await insert(pool, [ahead])
    async with pool.acquire() as conn:  # timestamptz takes 'infinity', which no MetricRow can carry
        await conn.execute(
            """INSERT INTO coin_metrics (mint, "timestamp", phase_id_at_time, price_open, price_high,
                   price_low, price_close, market_cap_close, volume_sol)
               VALUES ($1, 'infinity', 1, 1, 1, 1, 1, 1, 1)""",
            coin,
        )
        clock = await data_clock(conn, SETTINGS.future_tolerance_seconds)
    assert clock is not None and clock <= datetime.now(UTC) + timedelta(
        seconds=SETTINGS.future_tolerance_seconds
    )
    await insert(pool, second)
    await until_caught_up(pool)
    stored = await predictions(pool, model.id)
    later_of_coin = {(r.mint, r.timestamp) for r in second if r.mint == coin}
    # (the minimum scan interval skips some; a future row taken as the last scan would skip them all)
    assert len(later_of_coin & stored) >= len(later_of_coin) // 2 > 0, (
        "later real rows of that coin are scored"
    )
    assert all(ts <= datetime.now(UTC) for _, ts in stored)
    async with pool.acquire() as conn:
        assert await set_aside_counts(conn, model.id) == {"bad_time": 2}
        newest_scan = await conn.fetchval("SELECT max(last_scan_ts) FROM coinfleet_scan_state")
        assert newest_scan <= datetime.now(UTC)
        data = await data_clock(conn, SETTINGS.future_tolerance_seconds)
    # evaluation: the round's clock stops at the wall clock, so no open prediction settles early
    round_clock = FeedClock(stall_seconds=None, tolerance_seconds=SETTINGS.future_tolerance_seconds).now(data)
    assert round_clock is not None
    await run_round(pool, RoundConfig(grace_seconds=120, base_quota=100_000), round_clock)
    early = await fetchval(
        pool,
        """SELECT count(*) FROM coinfleet_evaluations e JOIN coinfleet_predictions p ON p.id = e.prediction_id
           WHERE p.evaluate_at > now()""",
    )
    assert early == 0


async def test_a_settings_row_that_no_longer_validates_fails_that_model_alone(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, running: Callable[..., Supervisor]
) -> None:
    broken = await activate(pool, small_bundle, "broken", min_scan_interval_seconds=0)
    healthy = await activate(pool, small_bundle, "healthy", min_scan_interval_seconds=0)
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE coinfleet_models SET settings = settings || '{"alert_threshold": 7, "gone": 1}'
               WHERE id = $1""",
            broken.id,
        )
        listed = {m.name: m for m in await registry.list_models(conn)}
    assert listed["broken"].settings_error is not None
    assert "alert_threshold" in listed["broken"].settings_error
    assert listed["healthy"].settings_error is None
    shown = {m.name: m.settings_error for m in await service_models.list_models(pool)}
    assert shown["broken"] == listed["broken"].settings_error and shown["healthy"] is None
    running()
    rows = market_rows(coins=6, seconds=120, seed=5)
    await insert(pool, rows)
    async with asyncio.timeout(60):
        while len(await predictions(pool, healthy.id)) < len(rows):
            await asyncio.sleep(0.05)
    async with pool.acquire() as conn:
        model = await registry.get(conn, "broken")
        assert model.status == "quarantined"
        assert model.status_reason is not None and "alert_threshold" in model.status_reason
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "coinfleet", "models", "list", "--json"],
        env={**os.environ, "COINFLEET_DATABASE_URL": db_dsn},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    by_cli = {m["name"]: m for m in json.loads(cli.stdout)}
    assert "alert_threshold" in by_cli["broken"]["settings_error"]
    assert by_cli["healthy"]["settings_error"] is None and by_cli["healthy"]["status"] == "active"
    repaired = await service_models.update_settings(
        pool, "broken", {"alert_threshold": 0.8}, allow_private=False
    )
    assert repaired.settings_error is None
    assert repaired.settings["alert_threshold"] == 0.8


async def test_settings_changes_from_concurrent_writers_are_all_kept(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "contended")
    changes: list[dict[str, object]] = [
        {"alert_threshold": 0.81}, {"weight": 3.0}, {"min_scan_interval_seconds": 7.0},
        {"ignore_bad_seconds": 9.0}, {"max_log_entries_alert": 4}, {"batch_timeout_seconds": 12.0},
        {"send_ignored": True}, {"memory_limit_mb": 512},
    ]  # fmt: skip

    async def change(one: dict[str, object]) -> None:
        async with pool.acquire() as conn:
            await registry.change_settings(conn, "contended", one)

    await asyncio.gather(*(change(c) for c in changes))
    async with pool.acquire() as conn:
        settings = (await registry.get(conn, "contended")).settings.model_dump()
    for one in changes:
        for key, value in one.items():
            assert settings[key] == value, f"{key} was lost to a concurrent writer"


async def test_phases_that_silently_disable_a_model_are_refused(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "phased")
    await insert(pool, market_rows(coins=4, seconds=60, seed=6))
    async with pool.acquire() as conn:
        with pytest.raises(SettingError, match="empty phase list"):
            await registry.change_settings(conn, "phased", {"phases": []})
        with pytest.raises(SettingError, match="phases 9 occur in none"):
            await registry.change_settings(conn, "phased", {"phases": [1, 9]})
        assert (await registry.change_settings(conn, "phased", {"phases": [1]})).settings.phases == [1]


async def test_a_lane_whose_task_ends_is_started_again(
    pool: asyncpg.Pool, small_bundle: ModelBundle, running: Callable[..., Supervisor]
) -> None:
    model = await activate(pool, small_bundle, "phoenix", min_scan_interval_seconds=0)
    supervisor = running()
    async with asyncio.timeout(30):
        while not supervisor.lanes:
            await asyncio.sleep(0.05)
    first = supervisor.lanes[0]
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "lane:phoenix"]
    task.cancel()  # as if it had died
    async with asyncio.timeout(30):
        while not supervisor.lanes or supervisor.lanes[0] is first:
            await asyncio.sleep(0.05)
    rows = market_rows(coins=4, seconds=60, seed=8)
    await insert(pool, rows)
    await until_caught_up(pool)
    assert await predictions(pool, model.id) == {(r.mint, r.timestamp) for r in rows}
