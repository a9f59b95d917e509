"""The SQL evaluation gives exactly what the pure outcome rules (training labels) give: as of the horizon
end, once the feed has shown it was alive after it."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import pytest
from test_evaluation_support import (
    CONFIG,
    GRACE,
    T0,
    Bar,
    feed_of,
    insert_bars,
    insert_model,
    insert_prediction,
    outcome_of,
    price_path,
    stored,
)

from coinfleet.evaluation.outcomes import evaluate_outcome
from coinfleet.evaluation.rounds import FeedClock, data_clock, drain, run_round
from coinfleet.targets import TargetSpec

UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)
DOWN10 = TargetSpec(kind="change", horizon_seconds=60, direction="down", change_percent=10.0)
P = 2.8e-08


async def judge(
    pool: asyncpg.Pool,
    bars: Sequence[Bar],
    *,
    target: TargetSpec = UP10,
    p0: float | None = P,
    prediction: int = 1,
    others: Sequence[Bar] = (),
) -> asyncpg.Record | None:
    """Store bars (and bars of another coin), one prediction at t=0, drain at the data clock, return its
    evaluation after checking it against the pure rules."""
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "m", target)
        await insert_bars(conn, "coin", bars)
        await insert_bars(conn, "other", others)
        prediction_id = await insert_prediction(
            conn, model_id, mint="coin", at=0, p0=p0, target=target, prediction=prediction
        )
    await drain(pool, CONFIG)
    async with pool.acquire() as conn:
        row = await stored(conn, prediction_id)
    expected = evaluate_outcome(
        t0=T0.timestamp(),
        p0=p0,
        path=price_path(bars, since=0),
        target=target,
        feed=feed_of(bars, others),
        grace_seconds=GRACE,
    )
    if row is None:
        assert expected.status == "pending"
    else:
        assert outcome_of(row) == expected
    return row


async def test_exactly_at_the_threshold_counts(pool: asyncpg.Pool) -> None:
    row = await judge(
        pool, [Bar(at=0, close=P), Bar(at=30, close=P, high=P * 1.1), Bar(at=60, close=P * 1.1)]
    )
    assert row is not None
    assert (row["status"], row["hit_within"], row["reached_at_horizon"]) == ("ok", True, True)
    assert row["result_at_horizon"] == row["result_within"] == "success"
    assert row["hit_at"] == T0 + timedelta(seconds=30)
    assert row["price_at_prediction"] == P and row["price_at_horizon"] == P * 1.1


async def test_just_below_the_threshold_fails(pool: asyncpg.Pool) -> None:
    row = await judge(pool, [Bar(at=30, close=100, high=109.99), Bar(at=60, close=109.99)], p0=100.0)
    assert row is not None
    assert (row["hit_within"], row["reached_at_horizon"], row["result_within"]) == (False, False, "failed")


async def test_down_target_hit_within_but_recovered(pool: asyncpg.Pool) -> None:
    bars = [Bar(at=20, close=95, low=89), Bar(at=40, close=92, low=90), Bar(at=60, close=99, low=97)]
    row = await judge(pool, bars, target=DOWN10, p0=100.0)
    assert row is not None
    assert (row["hit_within"], row["reached_at_horizon"]) == (True, False)
    assert (row["result_within"], row["result_at_horizon"]) == ("success", "failed")
    assert row["min_change_pct"] == pytest.approx(-11.0) and row["min_change_at"] == T0 + timedelta(
        seconds=20
    )


async def test_negative_prediction_succeeds_when_target_missed(pool: asyncpg.Pool) -> None:
    row = await judge(pool, [Bar(at=30, close=101), Bar(at=61, close=102)], p0=100.0, prediction=0)
    assert row is not None
    assert (row["reached_at_horizon"], row["result_at_horizon"], row["result_within"]) == (
        False,
        "success",
        "success",
    )


async def test_negative_prediction_fails_when_target_reached(pool: asyncpg.Pool) -> None:
    row = await judge(pool, [Bar(at=30, close=120), Bar(at=60, close=120)], p0=100.0, prediction=0)
    assert row is not None
    assert (row["result_at_horizon"], row["result_within"]) == ("failed", "failed")


async def test_a_rugged_coin_that_goes_quiet_fails_an_up_prediction(pool: asyncpg.Pool) -> None:
    bars = [Bar(at=0, close=P), Bar(at=20, close=P * 0.05, high=P, low=P * 0.04)]
    others = [Bar(at=at, close=1.0) for at in (0, 40, 75, 60 + GRACE + 1)]
    row = await judge(pool, bars, others=others)
    assert row is not None
    assert (row["status"], row["result_at_horizon"], row["result_within"]) == ("ok", "failed", "failed")
    assert row["change_at_horizon_pct"] == pytest.approx(-95.0)
    assert row["horizon_observed_at"] == T0 + timedelta(seconds=20)


async def test_a_coin_that_stops_trading_waits_for_the_clock_then_takes_its_last_price(
    pool: asyncpg.Pool,
) -> None:
    bars = [Bar(at=0, close=100), Bar(at=10, close=130), Bar(at=50, close=80)]
    others = [Bar(at=70, close=1.0), Bar(at=60 + GRACE, close=1.0)]
    assert await judge(pool, bars, p0=100.0, others=others) is None, "the clock is not past end + grace"
    async with pool.acquire() as conn:
        await insert_bars(conn, "other", [Bar(at=60 + GRACE + 1, close=1.0)])
    await drain(pool, CONFIG)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM coinfleet_evaluations")
    assert row is not None
    assert (row["status"], row["change_at_horizon_pct"], row["rule"]) == ("ok", pytest.approx(-20.0), "as_of")
    assert (row["result_at_horizon"], row["result_within"]) == ("failed", "success")
    assert row["max_change_pct"] == pytest.approx(30.0) and row["hit_within"] is True


async def test_a_feed_stall_stays_pending_then_is_no_data_after_the_stall_limit(pool: asyncpg.Pool) -> None:
    bars = [Bar(at=0, close=100), Bar(at=30, close=120)]
    assert await judge(pool, bars, p0=100.0) is None, "no row of any coin after the end: the feed stalled"
    seconds = [0.0]
    clock = FeedClock(stall_seconds=300, monotonic=lambda: seconds[0])
    async with pool.acquire() as conn:
        data = await data_clock(conn)
    assert data is not None and clock.now(data) == data
    seconds[0] = 299.0  # no new row for 299 s: still the data clock, nothing due
    assert clock.now(data) == data
    assert (await run_round(pool, CONFIG, data)).total == 0
    seconds[0] = 300.0  # the stall limit: the wall clock counts
    stalled = clock.now(data)
    assert stalled is not None and stalled > T0 + timedelta(seconds=60 + GRACE)
    assert (await run_round(pool, CONFIG, stalled)).total == 1
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM coinfleet_evaluations")
    assert row is not None
    expected = evaluate_outcome(
        t0=T0.timestamp(),
        p0=100.0,
        path=price_path(bars, since=0),
        target=UP10,
        feed=feed_of(bars, clock=stalled),
        grace_seconds=GRACE,
    )
    assert outcome_of(row) == expected
    assert (row["status"], row["result_at_horizon"], row["result_within"]) == (
        "no_data",
        "not_applicable",
        "not_applicable",
    )
    assert row["hit_within"] is True and row["max_change_pct"] == pytest.approx(20.0)


async def test_a_row_after_the_end_only_shows_the_feed_was_alive(pool: asyncpg.Pool) -> None:
    row = await judge(pool, [Bar(at=30, close=100), Bar(at=60 + GRACE, close=115)], p0=100.0)
    assert row is not None
    assert row["status"] == "ok" and row["horizon_observed_at"] == T0 + timedelta(seconds=30)
    assert (row["change_at_horizon_pct"], row["reached_at_horizon"], row["hit_within"]) == (0.0, False, False)


async def test_no_row_of_any_coin_in_the_grace_period_is_no_data(pool: asyncpg.Pool) -> None:
    row = await judge(pool, [Bar(at=30, close=100), Bar(at=60 + GRACE + 5, close=115)], p0=100.0)
    assert row is not None and row["status"] == "no_data" and row["horizon_observed_at"] is None


@pytest.mark.parametrize("p0", [0.0, -1.0, None, math.nan])
async def test_zero_negative_or_missing_price_is_invalid(pool: asyncpg.Pool, p0: float | None) -> None:
    row = await judge(pool, [Bar(at=60, close=1.0)], p0=p0)
    assert row is not None
    assert (row["status"], row["result_at_horizon"], row["hit_within"]) == (
        "invalid_price",
        "not_applicable",
        None,
    )


async def test_zero_and_missing_prices_in_the_path(pool: asyncpg.Pool) -> None:
    bars = [Bar(at=20, close=None), Bar(at=40, close=0.0), Bar(at=60, close=None)]
    row = await judge(pool, bars, target=DOWN10, p0=100.0)
    assert row is not None
    assert (row["status"], row["change_at_horizon_pct"], row["reached_at_horizon"]) == ("ok", None, None)
    assert row["min_change_pct"] == -100.0 and row["result_at_horizon"] == "not_applicable"


async def test_classic_target(pool: asyncpg.Pool) -> None:
    target = TargetSpec(
        kind="classic", horizon_seconds=60, variable="market_cap_close", operator=">=", value=50
    )
    bars = [Bar(at=20, close=1, market_cap=55), Bar(at=60, close=1, market_cap=40)]
    row = await judge(pool, bars, target=target, p0=1.0)
    assert row is not None
    assert (row["hit_within"], row["reached_at_horizon"], row["result_at_horizon"]) == (True, False, "failed")


def _random_bars(rng: random.Random) -> list[Bar]:
    bars = []
    for _ in range(rng.randint(0, 8)):
        close = rng.choice([None, 0.0, P * rng.uniform(0.5, 1.5), P * rng.choice([0.9, 1.1, 1.0])])
        high = rng.choice([None, close, None if close is None else close * 1.1, math.nan])
        bars.append(Bar(at=rng.choice([-5, 0, 15, 30, 45, 59, 60, 61, 89, 90, 91]), close=close, high=high))
    return sorted({b.at: b for b in bars}.values(), key=lambda b: b.at)


async def test_random_paths_match_the_pure_rules(pool: asyncpg.Pool) -> None:
    rng = random.Random(5)
    targets = [
        UP10,
        DOWN10,
        TargetSpec(kind="classic", horizon_seconds=60, variable="price_close", operator="=", value=P),
    ]
    cases = []
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "random", UP10)
        for i in range(150):
            bars, target = _random_bars(rng), rng.choice(targets)
            p0 = rng.choice([P, P, P, 0.0, None])
            await insert_bars(conn, f"c{i}", bars)
            pid = await insert_prediction(conn, model_id, mint=f"c{i}", at=0, p0=p0, target=target)
            cases.append((pid, bars, target, p0))
    clock = T0 + timedelta(seconds=1000)
    result = await run_round(pool, CONFIG, clock)
    assert result.total == len(cases)
    feed = feed_of(*(bars for _, bars, _, _ in cases), clock=clock)
    async with pool.acquire() as conn:
        for pid, bars, target, p0 in cases:
            row = await stored(conn, pid)
            assert row is not None
            expected = evaluate_outcome(
                t0=T0.timestamp(),
                p0=p0,
                path=price_path(bars, since=0),
                target=target,
                feed=feed,
                grace_seconds=GRACE,
            )
            assert outcome_of(row) == expected, (bars, target, p0)
