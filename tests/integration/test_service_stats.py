"""Statistics per model and across models: counts, both hit rates, alert precision and gain, over a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from test_evaluation_support import CONFIG, T0, Bar, insert_bars, insert_model, insert_prediction

from coinfleet.errors import InvalidRequest
from coinfleet.evaluation.rounds import drain
from coinfleet.service.stats import parse_since, statistics
from coinfleet.targets import TargetSpec

UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)
DOWN10 = TargetSpec(kind="change", horizon_seconds=60, direction="down", change_percent=10.0)


async def test_stats_of_hand_made_outcomes(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        up = await insert_model(conn, "up", UP10)
        down = await insert_model(conn, "down", DOWN10)
        await insert_bars(conn, "rise", [Bar(at=60, close=120), Bar(at=200, close=120)])  # +20 %
        await insert_bars(conn, "flat", [Bar(at=30, close=100, high=111), Bar(at=60, close=102)])  # +2 %
        await insert_bars(conn, "fall", [Bar(at=60, close=85)])  # -15 %
        await insert_prediction(conn, up, mint="rise", at=0, p0=100, target=UP10)  # alert, success both
        await insert_prediction(
            conn, up, mint="flat", at=0, p0=100, target=UP10
        )  # alert: fail@end, hit within
        await insert_prediction(conn, up, mint="fall", at=0, p0=100, target=UP10, prediction=0)  # success
        await insert_prediction(conn, up, mint="rise", at=150, p0=100, target=UP10)  # pending
        await insert_prediction(conn, down, mint="fall", at=0, p0=100, target=DOWN10)  # alert, gain +15
    await drain(pool, CONFIG)
    stats = {s.name: s for s in (await statistics(pool)).models}
    later = (await statistics(pool, since=T0 + timedelta(seconds=100), model="up")).models
    s = stats["up"]
    assert (s.predictions, s.by_tag, s.evaluated, s.pending) == (
        4,
        {"negative": 1, "positive": 0, "alert": 3},
        3,
        1,
    )
    assert s.by_status == {"ok": 3, "no_data": 0, "invalid_price": 0}
    assert s.hit_rate_at_horizon == pytest.approx(2 / 3)
    assert s.hit_rate_within == pytest.approx(1.0)
    assert (s.alert_precision_at_horizon, s.alert_precision_within) == (0.5, 1.0)
    assert s.alert_gain_avg_pct == pytest.approx(11.0) and s.alert_gain_median_pct == pytest.approx(11.0)
    assert stats["down"].alert_gain_avg_pct == pytest.approx(15.0), "down targets gain when the price falls"
    assert [(x.name, x.predictions, x.pending) for x in later] == [("up", 1, 1)]
    assert later[0].hit_rate_at_horizon is None


def test_parse_since() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_since("1h", now=now) == now - timedelta(hours=1)
    assert parse_since("24h", now=now) == now - timedelta(days=1)
    assert parse_since("2026-01-01T00:00:00+00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_since(None) is None and parse_since("all") is None
    with pytest.raises(InvalidRequest):
        parse_since("yesterday")
