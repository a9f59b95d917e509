"""Training labels and live evaluation come from one rule: on random multi-coin feeds with rugs, coins
that stop trading and feed stalls, the outcome `train` labels every row with is the outcome the SQL
evaluation stores for a prediction at that row (or both say it is still pending)."""

from __future__ import annotations

import random
from datetime import timedelta

import asyncpg
import pytest
from test_evaluation_support import CONFIG, GRACE, T0, insert_model, insert_prediction, outcome_of, stored

from coinfleet.evaluation.outcomes import FeedTimes, label_for_training
from coinfleet.evaluation.rounds import drain
from coinfleet.feed.writer import insert_metrics
from coinfleet.metrics import MetricRow
from coinfleet.models.dataset import outcomes_at_every_row
from coinfleet.targets import TargetSpec

TARGETS = [
    TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0),
    TargetSpec(kind="change", horizon_seconds=45, direction="down", change_percent=20.0),
]


def _row(mint: str, at: float, close: float | None, high: float | None, low: float | None) -> MetricRow:
    return MetricRow(
        mint=mint,
        timestamp=T0 + timedelta(seconds=at),
        phase_id_at_time=1,
        price_open=close,  # type: ignore[arg-type]
        price_high=high,  # type: ignore[arg-type]
        price_low=low,  # type: ignore[arg-type]
        price_close=close,  # type: ignore[arg-type]
        market_cap_close=1.0,
        volume_sol=1.0,
        buy_volume_sol=0.5,
        sell_volume_sol=0.5,
        num_buys=1,
        num_sells=1,
        unique_wallets=1,
    )


def _coin(rng: random.Random, mint: str, bursts: list[tuple[float, float]]) -> list[MetricRow]:
    """A coin trading at random times inside the feed's bursts; it may rug, stop early or miss prices."""
    stop = rng.uniform(0, bursts[-1][1]) if rng.random() < 0.4 else bursts[-1][1]
    times = sorted({round(rng.uniform(a, min(b, stop)), 3) for a, b in bursts if a < stop for _ in range(6)})
    rows, price = [], 1e-7
    for at in times:
        price *= 0.05 if rng.random() < 0.07 else rng.uniform(0.85, 1.2)
        close = None if rng.random() < 0.03 else price
        high = None if close is None else close * rng.uniform(1.0, 1.15)
        rows.append(_row(mint, at, close, high, None if close is None else close * rng.uniform(0.85, 1.0)))
    return rows


def _feed_with_stalls(rng: random.Random) -> list[tuple[float, float]]:
    """Busy stretches separated by silences longer than the grace period (the feed stalled)."""
    bursts, start = [], 0.0
    for _ in range(3):
        length = rng.uniform(60, 300)
        bursts.append((start, start + length))
        start += length + rng.choice([GRACE / 2, GRACE * 3, 200.0])
    return bursts


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_training_outcomes_equal_stored_outcomes(pool: asyncpg.Pool, seed: int) -> None:
    rng = random.Random(seed)
    bursts = _feed_with_stalls(rng)
    coins = [rows for i in range(8) if (rows := _coin(rng, f"c{i}", bursts))]
    target = rng.choice(TARGETS)
    every_row = [row for rows in coins for row in rows]
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "m", target)
        await insert_metrics(conn, every_row)
        ids = {
            (row.mint, row.timestamp): await insert_prediction(
                conn,
                model_id,
                mint=row.mint,
                at=(row.timestamp - T0).total_seconds(),
                p0=row.price_close,
                target=target,
            )
            for row in every_row
        }
    await drain(pool, CONFIG)
    feed = FeedTimes.of([row.timestamp.timestamp() for row in every_row])
    statuses = set()
    async with pool.acquire() as conn:
        for rows in coins:
            outcomes = outcomes_at_every_row(rows, target=target, feed=feed, grace_seconds=GRACE)
            for row, expected in zip(rows, outcomes, strict=True):
                stored_row = await stored(conn, ids[(row.mint, row.timestamp)])
                statuses.add(expected.status)
                if stored_row is None:
                    assert expected.status == "pending", row
                    continue
                assert outcome_of(stored_row) == expected, row
                for mode in ("within", "at_horizon"):
                    assert label_for_training(outcome_of(stored_row), mode) == label_for_training(
                        expected, mode
                    )
    assert statuses == {"ok", "no_data", "invalid_price", "pending"}, "every case was exercised"
