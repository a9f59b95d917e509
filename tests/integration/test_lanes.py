"""Lanes score every event once, keep going when a neighbour fails, and follow settings live."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import replace

import asyncpg
import numpy as np

from coinfleet.config import Settings
from coinfleet.features.cache import ObservationService
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.factory import inline_runner
from coinfleet.lanes.lane import Lane
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.protocol import Runner
from support import activate, market_rows, until

SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300)


class BrokenRunner:
    """A model whose every batch fails."""

    def expected_cpu_seconds(self, rows: int) -> float | None:
        return None

    async def predict(
        self, features: np.ndarray, *, on_answer: Callable[[], None] | None = None
    ) -> np.ndarray:
        raise RuntimeError("model exploded")

    async def close(self) -> None:
        pass


def runners_with_broken(name: str) -> Callable[[ModelRecord, bytes], Runner]:
    def factory(model: ModelRecord, artifact: bytes) -> Runner:
        return BrokenRunner() if model.name == name else inline_runner(model, artifact)

    return factory


async def test_every_event_is_scored_once(pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle) -> None:
    model = await activate(pool, small_bundle, "every", min_scan_interval_seconds=0)
    rows = market_rows(coins=20, seconds=300)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS)
    gc.unfreeze()
    thresholds = gc.get_threshold()
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: bool(supervisor.lanes) and supervisor.lanes[0].stats.events == len(rows))
    finally:
        supervisor.stop()
        await task
    assert gc.get_freeze_count() > 0  # what lived once the lane ran is out of full collections
    assert gc.get_threshold() == SETTINGS.gc_thresholds  # short-lived batch objects are left to refcounting
    gc.set_threshold(*thresholds)
    async with pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT mint, metric_ts, count(*) AS n FROM coinfleet_predictions WHERE model_id = $1"
            " GROUP BY mint, metric_ts",
            model.id,
        )
        totals = await conn.fetchrow(
            "SELECT stored_predictions, last_prediction_at, scan_cache_complete FROM coinfleet_cursors"
            " WHERE model_id = $1",
            model.id,
        )
        cached = await conn.fetchval(
            "SELECT count(*) FROM coinfleet_scan_state WHERE model_id = $1", model.id
        )
    assert {(r["mint"], r["metric_ts"]) for r in stored} == {(r.mint, r.timestamp) for r in rows}
    assert all(r["n"] == 1 for r in stored)
    assert totals["stored_predictions"] == len(rows)
    assert totals["last_prediction_at"] == max(r.timestamp for r in rows)
    # no rule of this model reads the scan cache: the lane kept none, and the cursor row says so
    assert cached == 0 and not totals["scan_cache_complete"]


async def test_a_rule_turned_on_counts_what_was_stored_without_the_scan_cache(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "limited", min_scan_interval_seconds=0)
    rows = sorted(market_rows(coins=12, seconds=400), key=lambda r: r.timestamp)
    first, second = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    async with pool.acquire() as conn:
        await insert_metrics(conn, first)
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS)
    task = asyncio.create_task(supervisor.run())
    count_by_coin = (
        "SELECT mint, count(*) FILTER (WHERE tag = $2) AS n FROM coinfleet_predictions WHERE model_id = $1"
        " GROUP BY mint"
    )
    try:
        await until(lambda: bool(supervisor.lanes) and supervisor.lanes[0].stats.events == len(first))
        lane = supervisor.lanes[0]
        async with pool.acquire() as conn:
            tag = await conn.fetchval(
                "SELECT tag FROM coinfleet_predictions WHERE model_id = $1"
                " GROUP BY tag ORDER BY count(*) DESC LIMIT 1",
                lane.model.id,
            )
            before = {r["mint"]: r["n"] for r in await conn.fetch(count_by_coin, lane.model.id, tag)}
            model = await registry.get(conn, "limited")
            await registry.update_settings(
                conn, "limited", model.settings.model_copy(update={f"max_log_entries_{tag}": 2})
            )
        await until(lambda: lane.model.settings.reads_scan_cache)
        async with pool.acquire() as conn:
            await insert_metrics(conn, second)
        await until(lambda: lane.stats.events == len(rows))
    finally:
        supervisor.stop()
        await task
    async with pool.acquire() as conn:
        after = {r["mint"]: r["n"] for r in await conn.fetch(count_by_coin, lane.model.id, tag)}
    # the limit counts every stored prediction of the tag, those stored while no cache was kept too
    assert any(n >= 2 for n in before.values())
    assert {m: after[m] for m, n in before.items() if n >= 2} == {m: n for m, n in before.items() if n >= 2}
    assert all(n <= max(2, before.get(mint, 0)) for mint, n in after.items())
    assert lane.stats.skips["log_limit"] > 0


async def test_a_metric_row_inserted_twice_is_predicted_once(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    plain = await activate(pool, small_bundle, "plain", min_scan_interval_seconds=0)
    hooked = await activate(
        pool, small_bundle, "hooked", min_scan_interval_seconds=0, webhook_url="http://127.0.0.1:9/hook"
    )
    rows = market_rows(coins=5, seconds=300)
    again = [replace(r, price_close=r.price_close * 2) for r in rows[::7]]
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
        await insert_metrics(conn, again)
    # batches small enough for the group commit: a repeat fails the group's plain insert, and the group
    # writes the same batches again skipping repeats
    settings = SETTINGS.model_copy(update={"batch_max_events": 40})
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=settings, runner_factory=inline_runner)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(
            lambda: (
                len(supervisor.lanes) == 2
                and all(lane.stats.events == len(rows) + len(again) for lane in supervisor.lanes)
            )
        )
        assert all(not lane.stats.errors for lane in supervisor.lanes)
    finally:
        supervisor.stop()
        await task
    assert supervisor.group.repeats > 0 and supervisor.group.failures == 0
    async with pool.acquire() as conn:
        for model in (plain, hooked):
            stored = await conn.fetch(
                "SELECT mint, metric_ts FROM coinfleet_predictions WHERE model_id = $1", model.id
            )
            assert sorted((r["mint"], r["metric_ts"]) for r in stored) == sorted(
                (r.mint, r.timestamp) for r in rows
            )
        alerts = await conn.fetchval("SELECT count(*) FROM coinfleet_alerts WHERE model_id = $1", hooked.id)
    assert 0 < alerts <= len(rows)


async def test_a_failing_model_does_not_stop_its_neighbour(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    good = await activate(pool, small_bundle, "good", min_scan_interval_seconds=0)
    await activate(pool, small_bundle, "broken", min_scan_interval_seconds=0)
    rows = market_rows(coins=10, seconds=200)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    supervisor = Supervisor(
        pool=pool, dsn=db_dsn, settings=SETTINGS, runner_factory=runners_with_broken("broken")
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: len(supervisor.lanes) == 2)
        lanes = {lane.model.name: lane for lane in supervisor.lanes}
        await until(
            lambda: (
                lanes["good"].stats.events == len(rows) and lanes["broken"].stats.errors["RuntimeError"] >= 2
            )
        )
    finally:
        supervisor.stop()
        await task
    assert lanes["broken"].stats.events == 0  # its events wait behind its cursor
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM coinfleet_predictions WHERE model_id = $1", good.id
        ) == len(rows)


async def test_new_events_do_not_cut_a_failing_models_backoff_short(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "broken", min_scan_interval_seconds=0)
    rows = market_rows(coins=10, seconds=200)
    supervisor = Supervisor(
        pool=pool, dsn=db_dsn, settings=SETTINGS, runner_factory=runners_with_broken("broken")
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: len(supervisor.lanes) == 1)
        lane = supervisor.lanes[0]
        for row in rows[:75]:  # a NOTIFY every 20 ms for 1.5 s
            async with pool.acquire() as conn:
                await insert_metrics(conn, [row])
            await asyncio.sleep(0.02)
    finally:
        supervisor.stop()
        await task
    # retries wait 0.2, 0.4, 0.8 s …: four attempts at most fit in 1.5 s, whatever the feed does
    assert 1 <= lane.stats.errors["RuntimeError"] <= 4


async def test_settings_change_applies_without_restart(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "live")
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: len(supervisor.lanes) == 1)
        async with pool.acquire() as conn:
            model = await registry.get(conn, "live")
            await registry.update_settings(
                conn, "live", model.settings.model_copy(update={"alert_threshold": 0.91})
            )
        await until(lambda: supervisor.lanes[0].model.settings.alert_threshold == 0.91)
        async with pool.acquire() as conn:
            await registry.set_status(conn, "live", "inactive")
        await until(lambda: not supervisor.lanes)
    finally:
        supervisor.stop()
        await task


async def test_features_at_t_ignore_rows_after_t(pool: asyncpg.Pool) -> None:
    rows = sorted(market_rows(coins=3, seconds=300), key=lambda r: r.timestamp)
    cut = len(rows) // 2
    key = (rows[cut].mint, rows[cut].timestamp)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows[: cut + 1])
    before = (await ObservationService(pool).observe([key]))[0]
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows[cut + 1 :])
    after = (await ObservationService(pool).observe([key]))[0]
    assert before is not None and after is not None
    assert before.row == after.row
    np.testing.assert_array_equal(before.features, after.features)


async def one_batch_lane(pool: asyncpg.Pool, db_dsn: str, rows: list[MetricRow]) -> Lane:
    """Insert the rows, let the only active model handle them all in one batch, return its lane."""
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    settings = Settings(poll_interval_seconds=0.2, batch_max_events=10_000)
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=settings)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: bool(supervisor.lanes))
        lane = supervisor.lanes[0]
        await until(lambda: lane.stats.events == len(rows))
    finally:
        supervisor.stop()
        await task
    return lane


async def test_backlog_policy_newest_skips_and_counts(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "newest", min_scan_interval_seconds=0, backlog_policy="newest")
    rows = market_rows(coins=5, seconds=200)
    lane = await one_batch_lane(pool, db_dsn, rows)
    coins = len({r.mint for r in rows})
    assert lane.stats.scored == coins
    assert lane.stats.skips["superseded"] == len(rows) - coins


async def test_stale_events_are_skipped_and_counted(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "fresh-only", min_scan_interval_seconds=0, max_staleness_seconds=30)
    rows = market_rows(coins=5, seconds=200)
    lane = await one_batch_lane(pool, db_dsn, rows)
    newest = max(r.timestamp for r in rows)
    stale = sum(1 for r in rows if (newest - r.timestamp).total_seconds() > 30)
    assert stale > 0
    assert lane.stats.skips["stale"] == stale
    assert lane.stats.scored == len(rows) - stale


async def test_an_event_held_back_by_an_older_transaction_is_read_when_that_one_ends(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await activate(pool, small_bundle, "held", min_scan_interval_seconds=0)
    rows = market_rows(coins=1, seconds=5)[:1]
    # a poll far longer than the wait below: the lane must find the event without it
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=Settings(poll_interval_seconds=60))
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: bool(supervisor.lanes))
        lane = supervisor.lanes[0]
        await asyncio.sleep(0.2)  # the lane has found nothing and sleeps on its signal
        async with pool.acquire() as older, pool.acquire() as conn, older.transaction():
            await older.fetchval("SELECT pg_current_xact_id()")  # an open transaction with an xid
            await insert_metrics(conn, rows)  # commits after it: its NOTIFY wakes the lane now
            await asyncio.sleep(0.3)
            assert lane.stats.events == 0  # not readable while the older transaction is open
        await until(lambda: lane.stats.events == 1, timeout=20)  # no NOTIFY comes for the commit
    finally:
        supervisor.stop()
        await task
