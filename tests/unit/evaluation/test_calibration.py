"""Brier score and reliability table on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.evaluation.calibration import (
    BucketSums,
    bucket_of,
    calibration,
    calibration_from_sums,
)


def test_perfectly_separated_confident_predictions() -> None:
    result = calibration([0.05, 0.05, 0.95, 0.95], [0, 0, 1, 1])
    assert result.count == 4 and result.base_rate == 0.5
    assert result.brier == pytest.approx(0.0025)
    low, high = result.table
    assert (low.lower, low.upper, low.count, low.hit_rate) == (0.0, 0.1, 2, 0.0)
    assert (high.lower, high.upper, high.count, high.hit_rate) == (0.9, 1.0, 2, 1.0)
    assert high.mean_probability == pytest.approx(0.95)


def test_always_one_half_scores_a_quarter() -> None:
    result = calibration([0.5] * 6, [1, 0, 1, 0, 1, 0])
    assert result.brier == pytest.approx(0.25)
    (row,) = result.table
    assert (row.lower, row.count, row.hit_rate) == (0.5, 6, 0.5)


def test_overconfident_model_shows_in_the_table() -> None:
    result = calibration([0.8] * 10, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    (row,) = result.table
    assert row.mean_probability == pytest.approx(0.8) and row.hit_rate == pytest.approx(0.2)
    assert result.brier == pytest.approx((2 * 0.2**2 + 8 * 0.8**2) / 10)


def test_bucket_edges() -> None:
    assert bucket_of([0.0, 0.0999, 0.1, 0.7, 0.9999, 1.0]).tolist() == [0, 0, 1, 7, 9, 9]


def test_no_judged_predictions() -> None:
    result = calibration([], [])
    assert (result.count, result.brier, result.base_rate, result.table) == (0, None, None, ())


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one label per probability"):
        calibration([0.1, 0.2], [1])


def test_sums_without_empty_buckets() -> None:
    sums = [
        BucketSums(bucket=3, count=0, sum_probability=0, sum_label=0, sum_squared_error=0),
        BucketSums(bucket=2, count=2, sum_probability=0.5, sum_label=1, sum_squared_error=0.5),
    ]
    result = calibration_from_sums(sums)
    assert [row.lower for row in result.table] == [0.2]


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1)), min_size=1, max_size=200))
def test_brier_equals_the_mean_squared_error(pairs: list[tuple[float, int]]) -> None:
    p, y = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    result = calibration(p, y)
    assert result.brier == pytest.approx(float(np.mean((p - y) ** 2)), abs=1e-12)
    assert sum(row.count for row in result.table) == len(pairs)
    assert all(row.lower <= row.mean_probability <= row.upper for row in result.table)
