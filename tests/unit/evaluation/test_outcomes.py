"""Outcome rules, hand-computed: thresholds, directions, gaps, missing data, bad prices, classic targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinfleet.evaluation.outcomes import (
    FeedTimes,
    Outcome,
    PricePath,
    evaluate_outcome,
    label_for_training,
    path_from_rows,
)
from coinfleet.metrics import MetricRow
from coinfleet.targets import TargetSpec

T0 = 1_000.0
UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)
DOWN10 = TargetSpec(kind="change", horizon_seconds=60, direction="down", change_percent=10.0)


def _path(
    t: Sequence[float],
    close: Sequence[float],
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    **columns: Sequence[float],
) -> PricePath:
    return PricePath(
        t=np.array(t, dtype=float),
        high=np.array(close if high is None else high, dtype=float),
        low=np.array(close if low is None else low, dtype=float),
        close=np.array(close, dtype=float),
        columns={name: np.array(values, dtype=float) for name, values in columns.items()},
    )


def _classic(operator: str, value: float, variable: str = "market_cap_close") -> TargetSpec:
    return TargetSpec(kind="classic", horizon_seconds=60, variable=variable, operator=operator, value=value)  # type: ignore[arg-type]


# --- change targets ---


def test_exactly_at_the_threshold_counts_as_hit() -> None:
    path = _path([1030, 1060], close=[105, 110], high=[110, 110])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert outcome.status == "ok"
    assert outcome.hit_within is True
    assert outcome.hit_at == 1030
    assert outcome.reached_at_horizon is True
    assert outcome.change_at_horizon_pct == pytest.approx(10.0)


def test_threshold_with_tiny_real_prices() -> None:
    p0 = 2.8e-08
    path = _path([1010, 1070], close=[p0 * 1.1, p0 * 1.1], high=[p0 * 1.1, p0 * 1.1])
    outcome = evaluate_outcome(t0=T0, p0=p0, path=path, target=UP10)
    assert outcome.hit_within is True
    assert outcome.reached_at_horizon is True


def test_just_below_the_threshold_is_a_miss() -> None:
    path = _path([1030, 1060], close=[100, 109.99], high=[109.99, 109.99])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert (outcome.hit_within, outcome.hit_at, outcome.reached_at_horizon) == (False, None, False)


def test_hit_within_but_fell_back_by_the_horizon() -> None:
    path = _path(
        [1020, 1040, 1060, 1080], close=[104, 101, 95, 200], high=[115, 112, 96, 210], low=[99, 100, 90, 190]
    )
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert outcome.hit_within is True
    assert outcome.hit_at == 1020
    assert outcome.horizon_observed_at == 1060
    assert outcome.change_at_horizon_pct == pytest.approx(-5.0)
    assert outcome.reached_at_horizon is False
    assert outcome.max_change_pct == pytest.approx(15.0)
    assert outcome.max_change_at == 1020
    assert outcome.min_change_pct == pytest.approx(-10.0)
    assert outcome.min_change_at == 1060


def test_extremes_take_the_first_row_reaching_them() -> None:
    path = _path([1010, 1020, 1030], close=[100, 100, 100], high=[120, 120, 101], low=[95, 95, 95])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert (outcome.max_change_at, outcome.min_change_at) == (1010, 1010)


def test_down_target_uses_lows_and_negative_bound() -> None:
    path = _path([1020, 1060], close=[97, 88], high=[130, 95], low=[90, 85])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=DOWN10)
    assert outcome.hit_within is True
    assert outcome.hit_at == 1020
    assert outcome.reached_at_horizon is True
    assert outcome.change_at_horizon_pct == pytest.approx(-12.0)


def test_down_target_ignores_a_rise() -> None:
    path = _path([1020, 1060], close=[150, 150], high=[160, 160], low=[95, 140])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=DOWN10)
    assert (outcome.hit_within, outcome.reached_at_horizon) == (False, False)


def test_the_last_row_before_the_end_is_the_horizon_price() -> None:
    path = _path([1030], close=[120], high=[125])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert outcome.status == "ok"
    assert (outcome.horizon_observed_at, outcome.reached_at_horizon) == (1030, True)
    assert outcome.change_at_horizon_pct == pytest.approx(20.0)
    assert outcome.max_change_pct == pytest.approx(25.0)


def test_a_rugged_coin_that_goes_quiet_is_judged_on_its_collapse() -> None:
    path = _path([1000, 1010], close=[100, 3], high=[100, 100], low=[100, 2])
    feed = FeedTimes.of([1000, 1010, 1070, 1200])  # other coins kept trading
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10, feed=feed)
    assert (outcome.status, outcome.horizon_observed_at, outcome.reached_at_horizon) == ("ok", 1010, False)
    assert outcome.change_at_horizon_pct == pytest.approx(-97.0)
    assert label_for_training(outcome, "within") == 0


def test_a_coin_without_trades_keeps_its_prediction_price() -> None:
    feed = FeedTimes.of([1000, 1100, 1500])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=_path([1000], close=[100]), target=UP10, feed=feed)
    assert (outcome.status, outcome.change_at_horizon_pct, outcome.horizon_observed_at) == ("ok", 0.0, 1000)


def test_pending_until_the_clock_passes_end_plus_grace() -> None:
    path = _path([1000, 1030], close=[100, 120])
    for clock, status in [(1060, "pending"), (1060 + 120, "pending"), (1060 + 121, "ok")]:
        feed = FeedTimes.of([1000, 1030, 1061], clock=clock)
        assert evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10, feed=feed).status == status


def test_a_row_of_the_coin_after_the_end_settles_at_once() -> None:
    path = _path([1000, 1030, 1065], close=[100, 120, 50])
    feed = FeedTimes.of([1000, 1030, 1065])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10, feed=feed)
    assert (outcome.status, outcome.horizon_observed_at, outcome.reached_at_horizon) == ("ok", 1030, True)


def test_a_feed_stall_at_the_end_is_no_data() -> None:
    path = _path([1000, 1030], close=[100, 120], high=[100, 125])
    feed = FeedTimes.of([1000, 1030, 1059, 1181])  # nothing of any coin in [1060, 1180]
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10, feed=feed)
    assert (outcome.status, outcome.change_at_horizon_pct, outcome.horizon_observed_at) == (
        "no_data",
        None,
        None,
    )
    assert outcome.max_change_pct == pytest.approx(25.0) and outcome.hit_within is True
    assert label_for_training(outcome, "within") is None


def test_the_feed_stalls_are_exactly_where_a_horizon_end_is_no_data() -> None:
    feed = FeedTimes.of([1000, 1010, 1020, 1200, 1205, 1400, 1530])
    stalls = feed.stalls(120)
    assert stalls == [(1020, 1200), (1205, 1400), (1400, 1530)]
    for horizon in range(1, 410):  # a coin that wrote only its prediction's row, judged at the clock 1530
        target = TargetSpec(kind="change", horizon_seconds=horizon, direction="up", change_percent=10.0)
        outcome = evaluate_outcome(t0=T0, p0=100.0, path=_path([T0], close=[100]), target=target, feed=feed)
        end = T0 + horizon
        in_stall = any(before < end < after - 120 for before, after in stalls)
        assert outcome.status == ("no_data" if in_stall else "ok"), horizon


def test_empty_path_is_no_data_without_extremes() -> None:
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=_path([], close=[]), target=UP10)
    assert outcome == Outcome(status="no_data", hit_within=False)


def test_rows_after_the_end_never_give_the_price() -> None:
    path = _path([1030, 1500, 1600], close=[104, 130, 50], high=[105, 140, 60], low=[101, 120, 40])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert outcome.status == "ok"
    assert outcome.horizon_observed_at == 1030
    assert outcome.change_at_horizon_pct == pytest.approx(4.0)
    assert outcome.reached_at_horizon is False
    assert outcome.hit_within is False  # the 140 high came after the horizon end
    assert outcome.max_change_pct == pytest.approx(5.0)
    assert outcome.max_change_at == 1030


def test_no_row_from_the_prediction_to_the_end_is_no_data() -> None:
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=_path([2000], close=[90]), target=UP10)
    assert outcome.status == "no_data"
    assert (outcome.hit_within, outcome.max_change_pct, outcome.min_change_pct) == (False, None, None)


def test_a_row_exactly_at_the_horizon_end_is_inside_and_is_the_horizon_row() -> None:
    path = _path([1060, 1061], close=[111, 50], high=[111, 50])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert (outcome.hit_within, outcome.horizon_observed_at, outcome.reached_at_horizon) == (True, 1060, True)


def test_rows_at_or_before_the_prediction_are_ignored() -> None:
    path = _path([990, 1000, 1060], close=[500, 500, 100], high=[500, 500, 100])
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=path, target=UP10)
    assert outcome.hit_within is False
    assert outcome.max_change_pct == pytest.approx(0.0)


def test_missing_close_at_the_horizon_is_unknown_not_a_miss() -> None:
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=_path([1060], close=[math.nan]), target=UP10)
    assert outcome.status == "ok"
    assert (outcome.change_at_horizon_pct, outcome.reached_at_horizon) == (None, None)
    assert label_for_training(outcome, "at_horizon") is None


@pytest.mark.parametrize("p0", [0.0, -1.0, math.nan, math.inf, None])
def test_bad_prediction_price_is_invalid_not_an_error(p0: float | None) -> None:
    outcome = evaluate_outcome(t0=T0, p0=p0, path=_path([1060], close=[100]), target=UP10)
    assert outcome == Outcome(status="invalid_price")
    assert label_for_training(outcome, "within") is None


# --- classic targets ---


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [
        (">", 50.0, True),
        (">", 60.0, False),
        ("<", 61.0, True),
        ("<", 60.0, False),
        (">=", 60.0, True),
        (">=", 60.1, False),
        ("<=", 60.0, True),
        ("<=", 59.9, False),
        ("=", 60.0, True),
        ("=", 60.0 * (1 + 1e-13), True),
        ("=", 60.0 * (1 + 1e-9), False),
    ],
)
def test_classic_operators_on_the_horizon_row(operator: str, value: float, holds: bool) -> None:
    path = _path([1030, 1060, 1090], close=[1, 1, 1], market_cap_close=[10.0, 60.0, 99.0])
    outcome = evaluate_outcome(t0=T0, p0=1.0, path=path, target=_classic(operator, value))
    assert outcome.reached_at_horizon is holds


def test_classic_equal_tolerates_float_rounding() -> None:
    path = _path([1060], close=[1], market_cap_close=[0.1 + 0.2])
    assert evaluate_outcome(t0=T0, p0=1.0, path=path, target=_classic("=", 0.3)).reached_at_horizon is True


def test_classic_hit_within_looks_at_every_row_in_the_horizon() -> None:
    path = _path([1030, 1060, 1090], close=[1, 1, 1], market_cap_close=[80.0, 10.0, 99.0])
    outcome = evaluate_outcome(t0=T0, p0=1.0, path=path, target=_classic(">", 50.0))
    assert (outcome.hit_within, outcome.hit_at, outcome.reached_at_horizon) == (True, 1030, False)


def test_classic_on_a_price_column_reads_the_price_arrays() -> None:
    path = _path([1060], close=[2.0])
    outcome = evaluate_outcome(t0=T0, p0=1.0, path=path, target=_classic(">=", 2.0, "price_close"))
    assert outcome.reached_at_horizon is True


def test_classic_missing_value_at_horizon_is_unknown() -> None:
    path = _path([1060], close=[1.0], market_cap_close=[math.nan])
    outcome = evaluate_outcome(t0=T0, p0=1.0, path=path, target=_classic(">", 0.0))
    assert outcome.reached_at_horizon is None
    assert outcome.hit_within is False


def test_classic_without_its_column_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="market_cap_close"):
        evaluate_outcome(t0=T0, p0=1.0, path=_path([1060], close=[1.0]), target=_classic(">", 0.0))


# --- labels ---


def test_labels_follow_the_mode() -> None:
    outcome = Outcome(status="ok", hit_within=True, reached_at_horizon=False)
    assert label_for_training(outcome, "within") == 1
    assert label_for_training(outcome, "at_horizon") == 0


# --- paths from rows ---


def _row(seconds: float, close: float, **extra: float | None) -> MetricRow:
    return MetricRow(
        mint="a",
        timestamp=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
        phase_id_at_time=1,
        price_open=close,
        price_high=close * 2,
        price_low=close / 2,
        price_close=close,
        market_cap_close=close * 1e9,
        volume_sol=1.0,
        buy_volume_sol=0.5,
        sell_volume_sol=0.5,
        num_buys=1,
        num_sells=1,
        unique_wallets=1,
        **extra,
    )


def test_path_from_rows_keeps_rows_from_the_prediction_on_sorted() -> None:
    rows = [_row(30, 3.0, buy_pressure_ratio=None), _row(0, 1.0), _row(10, 2.0, buy_pressure_ratio=0.5)]
    path = path_from_rows(rows, since=rows[2].timestamp, columns=["buy_pressure_ratio"])
    np.testing.assert_array_equal(path.close, [2.0, 3.0])
    np.testing.assert_array_equal(path.high, [4.0, 6.0])
    np.testing.assert_array_equal(path.columns["buy_pressure_ratio"], [0.5, math.nan])
    assert path.t[1] - path.t[0] == 20.0
    with pytest.raises(ValueError, match="moon"):
        path_from_rows(rows, since=rows[1].timestamp, columns=["moon"])


# --- properties ---


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.floats(0.5, 200.0), max_size=12),
    moves=st.lists(st.floats(-60.0, 200.0), min_size=12, max_size=12),
    target_pct=st.floats(0.5, 100.0),
    direction=st.sampled_from(["up", "down"]),
)
def test_hit_within_agrees_with_the_extremes(
    offsets: list[float], moves: list[float], target_pct: float, direction: str
) -> None:
    t = T0 + np.cumsum(offsets)
    close = 100.0 * (1 + np.array(moves[: len(t)]) / 100.0)
    target = TargetSpec(kind="change", horizon_seconds=300, direction=direction, change_percent=target_pct)  # type: ignore[arg-type]
    outcome = evaluate_outcome(t0=T0, p0=100.0, path=_path(t.tolist(), close.tolist()), target=target)
    extreme = outcome.max_change_pct if direction == "up" else outcome.min_change_pct
    if extreme is None:
        assert outcome.hit_within is False
    elif direction == "up":
        assert outcome.hit_within == (extreme >= target_pct - 1e-9)
    else:
        assert outcome.hit_within == (extreme <= -target_pct + 1e-9)
    assert (outcome.status == "ok") == bool(np.any(t <= T0 + 300))
