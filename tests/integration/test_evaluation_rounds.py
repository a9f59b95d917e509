"""Rounds: fair per-model quotas, SKIP LOCKED workers, target snapshots, live ATH/min tracking."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from test_evaluation_support import (
    CONFIG,
    T0,
    Bar,
    insert_bars,
    insert_model,
    insert_prediction,
    stored,
)

from coinfleet.evaluation.rounds import FeedClock, RoundConfig, drain, evaluate_model, run_round, track_open
from coinfleet.targets import TargetSpec

UP5 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=5.0)


async def _backlog(pool: asyncpg.Pool, model: str, count: int, **settings: object) -> int:
    """A model with `count` due predictions (set-based), on coin 'c' with bars every 10 s."""
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, model, UP5, **settings)
        await conn.execute(
            "INSERT INTO coinfleet_predictions (model_id, model_version, mint, metric_ts, probability,"
            " prediction, tag, alert_threshold, target, evaluate_at, price_close, event_tx, event_seq)"
            " SELECT $1, 1, 'c', $2::timestamptz + make_interval(secs => i * 0.001), 0.9, 1, 'alert', 0.7,"
            " $3::jsonb, $2::timestamptz + make_interval(secs => 60 + i * 0.001), 1.0, '1'::xid8, i"
            " FROM generate_series(1, $4) AS i",
            model_id,
            T0,
            json.dumps(UP5.to_dict()),
            count,
        )
    return model_id


async def _bars(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await insert_bars(conn, "c", [Bar(at=10 * i, close=1.0 + 0.01 * i) for i in range(20)])


async def test_small_model_finishes_in_round_one_beside_a_backlog(pool: asyncpg.Pool) -> None:
    await _bars(pool)
    big = await _backlog(pool, "big", 3000)
    small = await _backlog(pool, "small", 10)
    config = RoundConfig(grace_seconds=30, base_quota=200, connections=2)
    rounds = await drain(pool, config)
    assert len(rounds[0].evaluated[small]) == 10
    assert len(rounds[0].evaluated[big]) == 200
    assert sum(len(r.evaluated.get(big, [])) for r in rounds) == 3000
    assert len(rounds) == 15


async def test_quota_follows_the_weight(pool: asyncpg.Pool) -> None:
    await _bars(pool)
    light = await _backlog(pool, "light", 500, weight=1.0)
    heavy = await _backlog(pool, "heavy", 500, weight=3.0)
    result = await run_round(pool, RoundConfig(grace_seconds=30, base_quota=50), T0 + timedelta(seconds=190))
    assert (len(result.evaluated[light]), len(result.evaluated[heavy])) == (50, 150)


async def test_two_workers_never_evaluate_the_same_prediction(pool: asyncpg.Pool) -> None:
    await _bars(pool)
    model = await _backlog(pool, "shared", 4000)
    clock = T0 + timedelta(seconds=190)

    async def worker() -> list[int]:
        mine: list[int] = []
        async with pool.acquire() as conn:
            while ids := await evaluate_model(conn, model, quota=150, clock=clock, grace_seconds=30):
                mine.extend(ids)
        return mine

    results = await asyncio.gather(*(worker() for _ in range(4)))
    everything = [i for ids in results for i in ids]
    assert len(everything) == len(set(everything)) == 4000
    assert all(results), "every worker got a share"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_evaluations") == 4000
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_open_predictions") == 0


async def test_an_open_row_left_beside_its_outcome_is_unqueued_not_a_failing_round(
    pool: asyncpg.Pool,
) -> None:
    """A tracker's update committing between a round's snapshot and its lock moves the open row, so
    the round stores the outcome but misses the row: the next round drops it and judges the rest."""
    await _bars(pool)
    model = await _backlog(pool, "leftover", 20)
    async with pool.acquire() as conn:
        left = await conn.fetchval("SELECT min(prediction_id) FROM coinfleet_open_predictions")
        await conn.execute(
            "INSERT INTO coinfleet_evaluations (prediction_id, model_id, status, result_at_horizon,"
            " result_within, grace_seconds)"
            " VALUES ($1, $2, 'no_data', 'not_applicable', 'not_applicable', 30)",
            left,
            model,
        )
        ids = await evaluate_model(
            conn, model, quota=100, clock=T0 + timedelta(seconds=190), grace_seconds=30
        )
        assert sorted(ids)[0] == left and len(ids) == 20
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_open_predictions") == 0
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_evaluations") == 20
        kept = await conn.fetchval("SELECT status FROM coinfleet_evaluations WHERE prediction_id = $1", left)
        assert kept == "no_data"


async def test_editing_the_model_later_does_not_change_the_evaluation(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "edited", UP5)
        await insert_bars(conn, "c", [Bar(at=30, close=1.06), Bar(at=60, close=1.06), Bar(at=200, close=1)])
        pid = await insert_prediction(conn, model_id, mint="c", at=0, p0=1.0, target=UP5)
        harder = TargetSpec(kind="change", horizon_seconds=120, direction="down", change_percent=50.0)
        await conn.execute(
            "UPDATE coinfleet_models SET target = $2::jsonb, settings = $3::jsonb WHERE id = $1",
            model_id,
            json.dumps(harder.to_dict()),
            json.dumps({"weight": 2, "alert_threshold": 0.99}),
        )
    await drain(pool, CONFIG)
    async with pool.acquire() as conn:
        row = await stored(conn, pid)
    assert row is not None
    assert row["horizon_observed_at"] == T0 + timedelta(seconds=60)
    assert (row["reached_at_horizon"], row["result_at_horizon"]) == (True, "success")


async def test_ath_and_min_follow_the_path_while_the_horizon_runs(pool: asyncpg.Pool) -> None:
    target = TargetSpec(kind="change", horizon_seconds=100, direction="up", change_percent=50.0)
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "ath", target)
        pid = await insert_prediction(conn, model_id, mint="c", at=0, p0=100.0, target=target)
        path = [
            Bar(at=10, close=104, high=110, low=101),
            Bar(at=20, close=97, high=105, low=95),
            Bar(at=30, close=108, high=110, low=99),  # ties the high: the first time stays
        ]
        await insert_bars(conn, "c", path)
        await insert_bars(conn, "clock", [Bar(at=31, close=1)])
        await track_open(conn, T0 + timedelta(seconds=31))
        first = await conn.fetchrow("SELECT * FROM coinfleet_open_predictions WHERE prediction_id = $1", pid)
        await insert_bars(conn, "c", [Bar(at=40, close=120, high=125, low=90), Bar(at=50, close=92, low=90)])
        await track_open(conn, T0 + timedelta(seconds=51))
        second = await conn.fetchrow("SELECT * FROM coinfleet_open_predictions WHERE prediction_id = $1", pid)
    assert first is not None and second is not None
    assert first["max_change_pct"] == pytest.approx(10.0) and first["max_change_at"] == T0 + timedelta(
        seconds=10
    )
    assert first["min_change_pct"] == pytest.approx(-5.0) and first["min_change_at"] == T0 + timedelta(
        seconds=20
    )
    assert first["tracked_until"] == T0 + timedelta(seconds=30)
    assert second["max_change_pct"] == pytest.approx(25.0) and second["max_change_at"] == T0 + timedelta(
        seconds=40
    )
    assert second["min_change_pct"] == pytest.approx(-10.0) and second["min_change_at"] == T0 + timedelta(
        seconds=40
    )


async def test_a_stalled_feed_lets_the_wall_clock_settle_predictions() -> None:
    ticks = iter([0.0, 0.0, 1.0, 500.0])
    clock = FeedClock(stall_seconds=300, monotonic=lambda: next(ticks))
    assert clock.now(T0) == T0
    later = clock.now(T0)
    assert later is not None and later > T0 + timedelta(days=200), "stalled: the wall clock (today) counts"


async def test_pending_until_the_clock_allows_then_nothing_stays_pending(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "dead", UP5)
        await insert_bars(conn, "c", [Bar(at=10, close=1.0)])
        pid = await insert_prediction(conn, model_id, mint="c", at=0, p0=1.0, target=UP5)
    assert not await drain(pool, CONFIG)
    await drain(pool, CONFIG, clock=T0 + timedelta(seconds=60 + CONFIG.grace_seconds + 1))
    async with pool.acquire() as conn:
        row = await stored(conn, pid)
    assert row is not None and row["status"] == "no_data"


async def test_a_quota_split_over_connections_is_served_whole_and_once(pool: asyncpg.Pool) -> None:
    await _bars(pool)
    model = await _backlog(pool, "split", 5000)
    config = RoundConfig(grace_seconds=30, base_quota=2000, connections=2)
    assert config.chunks(1.0) == [1000, 1000]  # two claims, on disjoint halves of the ids
    result = await run_round(pool, config, T0 + timedelta(seconds=190))
    ids = result.evaluated[model]
    assert len(ids) == 2000 and len(set(ids)) == 2000
    async with pool.acquire() as conn:  # each claim keeps to its own part of the ids
        odd = await evaluate_model(
            conn, model, quota=100, clock=T0 + timedelta(seconds=190), grace_seconds=30, part=1, parts=2
        )
    assert len(odd) == 100 and all(i % 2 == 1 for i in odd)
