"""The feature catalogue: hand-computed values, NaN for missing input, no look-ahead, serving = training."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinfleet.features.spec import (
    DEFAULT_FEATURES,
    FEATURES,
    WindowBatch,
    compute_batch,
    compute_features,
    compute_matrix,
    validate_feature_names,
)
from coinfleet.features.window import (
    WINDOW_COLUMNS,
    WINDOW_FIELDS,
    WINDOW_ROWS,
    CoinWindow,
    window_from_rows,
    windows_from_history,
)
from coinfleet.metrics import NUMERIC_COLUMNS, MetricRow

T0 = datetime(2025, 6, 6, 16, 0, tzinfo=UTC)


def _row(i: int, close: float = 1e-8, *, seconds: float | None = None, **overrides: Any) -> MetricRow:
    """Row i of coin "a", 6 s apart unless `seconds` says otherwise."""
    values: dict[str, Any] = {
        "mint": "a",
        "timestamp": T0 + timedelta(seconds=6 * i if seconds is None else seconds),
        "phase_id_at_time": 1,
        "price_open": close,
        "price_high": close * 1.01,
        "price_low": close * 0.99,
        "price_close": close,
        "market_cap_close": close * 1e9,
        "volume_sol": 1.0,
        "buy_volume_sol": 0.6,
        "sell_volume_sol": 0.4,
        "num_buys": 3,
        "num_sells": 2,
        "unique_wallets": 4,
    }
    values.update(overrides)
    return MetricRow(**values)


def _history(closes: Sequence[float], **overrides: Any) -> list[MetricRow]:
    return [_row(i, c, **overrides) for i, c in enumerate(closes)]


def _value(rows: Sequence[MetricRow], name: str) -> float:
    """The feature at the last row, as serving computes it."""
    return FEATURES[name].of(window_from_rows(rows[-WINDOW_ROWS:], rows[0].timestamp))


def _random_history(n: int, seed: int = 0) -> list[MetricRow]:
    rng = np.random.default_rng(seed)
    closes = 1e-8 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return [
        _row(
            i,
            float(c),
            volume_sol=float(rng.random()),
            buy_volume_sol=float(rng.random()),
            sell_volume_sol=float(rng.random()),
            unique_wallets=int(rng.integers(1, 20)),
            buy_pressure_ratio=float(rng.random()) if i % 7 else None,
        )
        for i, c in enumerate(closes)
    ]


# --- catalogue shape ---


def test_catalogue_has_named_described_features() -> None:
    assert len(DEFAULT_FEATURES) >= 25
    # the catalogue, then every coin_metrics column by its own name (models trained on raw rows)
    assert tuple(FEATURES) == (*DEFAULT_FEATURES, *NUMERIC_COLUMNS)
    for name, feature in FEATURES.items():
        assert feature.name == name
        assert feature.description


def test_window_has_one_array_per_numeric_column() -> None:
    assert set(WINDOW_FIELDS) == {"t", "first_seen", *NUMERIC_COLUMNS}


def test_every_feature_gives_one_float_per_window() -> None:
    windows = list(windows_from_history(_random_history(50)))
    matrix = compute_matrix(windows, DEFAULT_FEATURES)
    assert matrix.shape == (50, len(DEFAULT_FEATURES))
    assert matrix.dtype == np.float64
    assert not np.any(np.isinf(matrix))


def test_compute_features_is_one_row_of_the_matrix() -> None:
    windows = list(windows_from_history(_random_history(40)))
    matrix = compute_matrix(windows, DEFAULT_FEATURES)
    np.testing.assert_array_equal(compute_features(windows[-1], DEFAULT_FEATURES), matrix[-1])


def test_feature_order_follows_the_names() -> None:
    window = next(iter(reversed(list(windows_from_history(_random_history(30))))))
    forward = compute_features(window, ["price_change_1", "coin_age_seconds"])
    backward = compute_features(window, ["coin_age_seconds", "price_change_1"])
    np.testing.assert_array_equal(forward, backward[::-1])


def test_no_windows_gives_an_empty_matrix() -> None:
    assert compute_matrix([], ["price_change_1"]).shape == (0, 1)


def test_unknown_feature_names_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'moon_score'") as info:
        validate_feature_names(["price_change_1", "moon_score", "rug_score"])
    assert "rug_score" in str(info.value)
    with pytest.raises(ValueError, match="moon_score"):
        compute_matrix(list(windows_from_history(_random_history(3))), ["moon_score"])


# --- hand-computed values ---


def test_price_changes_are_percent_vs_k_rows_before() -> None:
    rows = _history([100.0, 110.0, 121.0, 100.0, 90.0, 80.0, 88.0])
    assert _value(rows, "price_change_1") == pytest.approx(10.0)
    assert _value(rows, "price_change_5") == pytest.approx((88 / 110 - 1) * 100)
    assert np.isnan(_value(rows, "price_change_10"))


def test_too_little_history_is_nan_not_zero() -> None:
    rows = _history([1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.isnan(_value(rows, "price_change_5"))
    assert _value([*rows, _row(5, 6.0)], "price_change_5") == pytest.approx(500.0)
    assert np.isnan(_value(rows[:1], "price_change_1"))
    assert np.isnan(_value(rows[:4], "volume_sum_5"))
    assert _value(rows, "volume_sum_5") == 5.0


def test_price_acceleration_compares_two_five_row_changes() -> None:
    closes = [100.0, 0, 0, 0, 0, 110.0, 0, 0, 0, 0, 132.0]
    rows = _history([c or 1.0 for c in closes])
    assert _value(rows, "price_acceleration_5") == pytest.approx(20.0 - 10.0)


def test_volatility_is_std_of_one_row_changes() -> None:
    closes = [float(c) for c in np.linspace(1.0, 3.0, 11) ** 2]
    expected = np.std([(closes[i + 1] / closes[i] - 1) * 100 for i in range(10)])
    assert _value(_history(closes), "volatility_10") == pytest.approx(expected)


def test_volume_ratio_and_spike() -> None:
    rows = [
        _row(i, volume_sol=v)
        for i, v in enumerate([9.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 12.0])
    ]
    assert _value(rows, "volume_ratio_5") == pytest.approx(12.0 / np.mean([2.0, 3.0, 4.0, 5.0, 4.0]))
    assert _value(rows, "volume_spike_10") == pytest.approx(12.0 / 5.0)
    assert _value(rows, "volume_sum_5") == pytest.approx(3.0 + 4.0 + 5.0 + 4.0 + 12.0)


def test_division_by_zero_is_nan_not_inf() -> None:
    rows = [_row(i, volume_sol=0.0, buy_volume_sol=0.0, sell_volume_sol=0.0) for i in range(6)]
    rows.append(_row(6, volume_sol=1.0))
    assert np.isnan(_value(rows, "volume_ratio_5"))
    assert np.isnan(_value(rows[:6], "buy_volume_share_5"))


def test_buy_side_features() -> None:
    rows = [_row(i, buy_volume_sol=3.0, sell_volume_sol=1.0, num_buys=4, num_sells=0) for i in range(5)]
    assert _value(rows, "buy_volume_share_5") == pytest.approx(0.75)
    assert _value(rows, "buy_sell_count_ratio_5") == pytest.approx(20.0)
    assert _value(rows, "net_volume_avg_5") == pytest.approx(2.0)


def test_net_volume_flips_counts_sign_changes() -> None:
    nets = [1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    rows = [_row(i, buy_volume_sol=max(n, 0.0), sell_volume_sol=max(-n, 0.0)) for i, n in enumerate(nets)]
    assert _value(rows, "net_volume_flips_10") == 4.0
    assert np.isnan(_value(rows[:9], "net_volume_flips_10"))


def test_optional_columns_absent_give_nan() -> None:
    rows = _history([1.0] * 12)
    for name in (
        "buy_pressure_avg_5",
        "whale_dominance_5",
        "whale_net_5",
        "dev_sold_flag",
        "volatility_pct_avg_5",
    ):
        assert np.isnan(_value(rows, name)), name
    assert np.isnan(_value(rows, "unique_signer_ratio_avg_5"))


def test_optional_columns_present() -> None:
    rows = [
        _row(i, buy_pressure_ratio=0.2 if i < 5 else 0.6, whale_buy_volume_sol=0.3, whale_sell_volume_sol=0.1)
        for i in range(10)
    ]
    assert _value(rows, "buy_pressure_avg_5") == pytest.approx(0.6)
    assert _value(rows, "buy_pressure_trend_5") == pytest.approx(0.4)
    assert _value(rows, "whale_dominance_5") == pytest.approx(0.4)
    assert _value(rows, "whale_net_5") == pytest.approx(1.0)


def test_one_missing_value_in_the_lookback_is_nan() -> None:
    rows = [_row(i, buy_pressure_ratio=None if i == 8 else 0.5) for i in range(10)]
    assert np.isnan(_value(rows, "buy_pressure_avg_5"))


def test_dev_sold_flag() -> None:
    assert _value([_row(0, dev_sold_amount=0.0), _row(1)], "dev_sold_flag") == 0.0
    assert _value([_row(0, dev_sold_amount=2.0), _row(1, dev_sold_amount=0.0)], "dev_sold_flag") == 1.0


def test_ath_distance_and_breakout() -> None:
    rows = [
        _row(i, 1.0, price_high=h)
        for i, h in enumerate([1.0, 2.0, 1.5, 1.2, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    ]
    assert _value(rows, "ath_distance_pct") == pytest.approx(-50.0)
    assert _value(rows, "breakout_10") == 0.0
    breakout = [*rows[1:], _row(11, 2.5, price_high=2.5)]
    assert _value(breakout, "breakout_10") == 1.0


def test_market_cap_velocity_is_per_second() -> None:
    rows = [_row(i, market_cap_close=10.0 + i) for i in range(6)]
    assert _value(rows, "market_cap_velocity_5") == pytest.approx(5.0 / 30.0)


def test_time_features() -> None:
    rows = [_row(i, seconds=s) for i, s in enumerate([0.0, 10.0, 25.0])]
    window = window_from_rows(rows[1:], first_seen=T0 - timedelta(seconds=100))
    age, gap, seen = compute_features(window, ["coin_age_seconds", "seconds_since_prev_row", "rows_seen"])
    assert (age, gap, seen) == (125.0, 15.0, 2.0)


def test_rows_seen_is_capped_at_the_window() -> None:
    rows = _history([1.0] * 50)
    assert _value(rows, "rows_seen") == WINDOW_ROWS


def test_last_row_values() -> None:
    rows = [_row(0, 1.0), _row(1, 2.5, phase_id_at_time=None, market_cap_close=77.0)]
    phase, close, cap = compute_features(window_from_rows(rows, T0), ["phase", "last_close", "market_cap"])
    assert np.isnan(phase)
    assert (close, cap) == (2.5, 77.0)


# --- windows ---


def test_window_arrays_are_float_with_nan_for_none() -> None:
    window = window_from_rows([_row(0), _row(1, buy_pressure_ratio=0.5)], T0)
    assert window.buy_pressure_ratio.dtype == np.float64
    assert np.isnan(window.buy_pressure_ratio[0])
    assert window.buy_pressure_ratio[1] == 0.5
    assert window.t[1] - window.t[0] == 6.0
    assert window.first_seen == T0.timestamp()
    with pytest.raises(ValueError, match="read-only"):
        window.t[0] = 0.0


@pytest.mark.parametrize(
    ("rows", "first_seen", "message"),
    [
        ([], T0, "at least one row"),
        ([_row(1), _row(0)], T0, "oldest"),
        ([_row(0), dataclasses.replace(_row(1), mint="b")], T0, "one coin"),
        ([_row(0)], T0.replace(tzinfo=None), "naive"),
    ],
)
def test_window_from_rows_refuses_bad_input(
    rows: list[MetricRow], first_seen: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        window_from_rows(rows, first_seen)


def test_empty_window_is_refused() -> None:
    full = window_from_rows([_row(0)], T0)
    empty = {name: getattr(full, name)[:0] for name in ("t", *NUMERIC_COLUMNS)}
    with pytest.raises(ValueError, match="at least"):
        CoinWindow(first_seen=0.0, **empty)


def test_history_windows_hold_the_last_rows_up_to_each_row() -> None:
    rows = _random_history(40)
    windows = list(windows_from_history(rows, window_rows=10))
    assert len(windows) == 40
    assert [len(w) for w in windows[:3]] == [1, 2, 3]
    assert len(windows[-1]) == 10
    assert windows[-1].t[-1] == rows[-1].timestamp.timestamp()
    assert all(w.first_seen == rows[0].timestamp.timestamp() for w in windows)


def test_history_equals_serving_windows_at_every_row() -> None:
    rows = _random_history(100, seed=3)
    training = compute_matrix(list(windows_from_history(rows)), DEFAULT_FEATURES)
    for i in range(len(rows)):
        served = window_from_rows(rows[max(0, i + 1 - WINDOW_ROWS) : i + 1], first_seen=rows[0].timestamp)
        np.testing.assert_array_equal(compute_features(served, DEFAULT_FEATURES), training[i])


def test_tables_as_serving_keeps_them_give_the_training_features() -> None:
    # serving keeps each coin's rows as one [rows, WINDOW_COLUMNS] table; short tables are padded like
    # short windows, and a table longer than WINDOW_ROWS is read from its newest rows only
    rows = _random_history(70, seed=5)
    windows = list(windows_from_history(rows, window_rows=40))
    tables = [np.column_stack([w.column(name) for name in WINDOW_COLUMNS]) for w in windows]
    served = compute_batch(WindowBatch.of_tables(tables, [w.first_seen for w in windows]), DEFAULT_FEATURES)
    np.testing.assert_array_equal(served, compute_matrix(windows, DEFAULT_FEATURES))
    assert np.isnan(served[0]).any() and not np.isnan(served[-1, DEFAULT_FEATURES.index("price_change_20")])


def test_longer_windows_give_the_same_features() -> None:
    rows = _random_history(80, seed=4)
    default = compute_matrix(list(windows_from_history(rows)), DEFAULT_FEATURES)
    longer = compute_matrix(list(windows_from_history(rows, window_rows=200)), DEFAULT_FEATURES)
    np.testing.assert_array_equal(default, longer)


# --- no look-ahead ---

_optional = st.one_of(st.none(), st.floats(0.0, 1.0))


@st.composite
def _histories(draw: st.DrawFn) -> list[MetricRow]:
    n = draw(st.integers(1, 45))
    gaps = draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    rows = []
    for i, second in enumerate(np.cumsum(gaps).tolist()):
        close = draw(st.floats(1e-10, 1e-3))
        rows.append(
            _row(
                i,
                close,
                seconds=float(second),
                price_high=close * draw(st.floats(1.0, 1.5)),
                volume_sol=draw(st.floats(0.0, 100.0)),
                buy_volume_sol=draw(st.floats(0.0, 50.0)),
                sell_volume_sol=draw(st.floats(0.0, 50.0)),
                unique_wallets=draw(st.integers(0, 50)),
                buy_pressure_ratio=draw(_optional),
                dev_sold_amount=draw(_optional),
                whale_buy_volume_sol=draw(_optional),
            )
        )
    return rows


@settings(max_examples=60, deadline=None)
@given(rows=_histories(), data=st.data())
def test_appending_later_rows_never_changes_a_feature(rows: list[MetricRow], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(rows) - 1))
    before = compute_matrix(list(windows_from_history(rows[: cut + 1])), DEFAULT_FEATURES)
    after = compute_matrix(list(windows_from_history(rows)), DEFAULT_FEATURES)
    np.testing.assert_array_equal(before, after[: cut + 1])
    served = window_from_rows(rows[max(0, cut + 1 - WINDOW_ROWS) : cut + 1], rows[0].timestamp)
    np.testing.assert_array_equal(compute_features(served, DEFAULT_FEATURES), after[cut])


# --- large batches ---


def test_ten_thousand_windows_in_one_batch_equal_the_same_windows_in_small_batches() -> None:
    windows = list(windows_from_history(_random_history(10_000, seed=5)))
    matrix = compute_matrix(windows, DEFAULT_FEATURES)
    assert matrix.shape == (10_000, len(DEFAULT_FEATURES))
    for start in (0, 4_321, 9_900):
        part = compute_matrix(windows[start : start + 100], DEFAULT_FEATURES)
        np.testing.assert_array_equal(part, matrix[start : start + 100])


_any_float = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=80, deadline=None)
@given(
    closes=st.lists(_any_float, min_size=1, max_size=25),
    volumes=st.lists(_any_float, min_size=25, max_size=25),
)
def test_features_are_finite_float32_or_nan_whatever_the_input(
    closes: list[float], volumes: list[float]
) -> None:
    rows = [
        _row(i, close, volume_sol=volumes[i], market_cap_close=volumes[-1 - i], price_high=close)
        for i, close in enumerate(closes)
    ]
    matrix = compute_matrix([window_from_rows(rows, T0)], DEFAULT_FEATURES)
    as_fed = matrix.astype(np.float32)
    assert np.all(np.isfinite(as_fed) | np.isnan(as_fed))


def test_values_beyond_float32_become_nan_not_inf() -> None:
    rows = [_row(0, 1.0), _row(1, 1.0, market_cap_close=1e300, volume_sol=1e39)]
    cap, volume = compute_features(window_from_rows(rows, T0), ["market_cap", "volume_sum_5"])
    assert np.isnan(cap)
    assert np.isnan(volume)


def test_a_raw_column_is_its_value_in_the_scoring_row() -> None:
    rows = [*_history([1e-8, 2e-8]), _row(2, 3e-8, num_buys=9)]
    assert _value(rows, "price_close") == 3e-8 and _value(rows, "num_buys") == 9
    assert np.isnan(_value(rows, "buy_pressure_ratio"))  # an absent optional column: NaN, never 0
