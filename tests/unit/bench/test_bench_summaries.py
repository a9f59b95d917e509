"""The benchmarks' verdicts: which step counts as sustained, how the share error is computed."""

from __future__ import annotations

import numpy as np
import pytest

from coinfleet.bench import harness, ingester, isolation, priority, throughput
from coinfleet.lanes.stats import LaneStats


def test_sustained_throughput_is_the_best_step_that_kept_up() -> None:
    steps = [
        {"events_per_s": 100, "predictions_per_s": 2000.0, "p99_ms": 20.0, "kept_up": True},
        {"events_per_s": 200, "predictions_per_s": 4000.0, "p99_ms": 90.0, "kept_up": True},
        {"events_per_s": 400, "predictions_per_s": 5000.0, "p99_ms": 900.0, "kept_up": True},  # p99 too high
        {"events_per_s": 800, "predictions_per_s": 6000.0, "p99_ms": 100.0, "kept_up": False},  # fell behind
    ]
    result = throughput.summarise(steps, models=20)
    assert result["predictions_per_s"] == 4000.0
    assert result["p99_ms"] == 90.0
    assert result["kept_up"]


def test_when_no_step_kept_up_the_best_is_reported_as_not_kept_up() -> None:
    steps = [{"events_per_s": 100, "predictions_per_s": 50.0, "p99_ms": 900.0, "kept_up": False}]
    result = throughput.summarise(steps, models=1)
    assert not result["kept_up"]
    assert result["predictions_per_s"] == 50.0


def test_share_error_against_weights() -> None:
    result = priority.summarise({"weight-1": 100, "weight-2": 200, "weight-4": 400})
    assert result["max_share_error"] == pytest.approx(0.0, abs=1e-9)
    skewed = priority.summarise({"weight-1": 0, "weight-2": 300, "weight-4": 400})
    assert skewed["min_served"] == 0
    assert skewed["max_share_error"] == pytest.approx(3 / 7 - 2 / 7, abs=1e-3)


def _turn(seconds: float, crashes: int) -> dict[str, object]:
    """100 predictions, each `seconds` after its metric's commit and 2 ms more after its insert."""
    return {
        "predictions": 100,
        "samples": np.full(100, seconds),
        "samples_from_insert": np.full(100, seconds + 0.002),
        "neighbour_errors": {"crashing": {"crash": crashes}},
    }


def test_isolation_pools_the_turns_of_a_phase() -> None:
    turns = [_turn(0.010, crashes=2), _turn(0.030, crashes=3)]
    result = isolation.pooled(turns)
    assert result["predictions"] == 200
    assert result["p50_ms"] == pytest.approx(20.0)  # between the turns: both count
    assert result["p99_ms"] == pytest.approx(30.0)
    assert result["p99_from_insert_ms"] == pytest.approx(32.0)
    assert result["neighbour_errors"] == {"crashing": {"crash": 5}}


def test_even_arrivals_are_evenly_spaced_at_the_rate() -> None:
    offsets = ingester.arrival_offsets(4, rate=2.0)
    assert offsets.tolist() == [0.5, 1.0, 1.5, 2.0]


def test_poisson_arrivals_keep_the_rate_but_bunch_up_and_repeat_per_seed() -> None:
    offsets = ingester.arrival_offsets(20_000, rate=10.0, arrivals="poisson", seed=4)
    gaps = np.diff(offsets)
    assert offsets[-1] == pytest.approx(2000.0, rel=0.03)  # the same mean rate
    assert np.all(gaps >= 0)
    assert 0.9 < gaps.std() / gaps.mean() < 1.1  # exponential gaps, where even ones have none
    assert np.mean(gaps < 0.01) > 0.08  # ~10% of events come within a tenth of the mean gap
    again = ingester.arrival_offsets(20_000, rate=10.0, arrivals="poisson", seed=4)
    assert np.array_equal(offsets, again)


def test_latency_from_commit_counts_from_the_commit_of_the_insert_that_held_the_row() -> None:
    commits = ingester.CommitLog()
    commits.add(ingester.Fed(rows=3, sent=[100.0, 101.0], committed=[100.004, 101.002]))
    stats = LaneStats()
    stats.record_latencies(np.array([100.001, 100.003]), 100.014)  # two rows of the first insert
    stats.record_latencies(np.array([101.001]), 101.012)  # the second insert's row
    assert stats.latency_quantile(0.0) == pytest.approx(0.011)  # from the trigger's clock
    assert commits.since_commit(stats) * 1000 == pytest.approx([10.0, 10.0, 10.0])
    stats.clear_latencies()
    assert len(commits.since_commit(stats)) == 0


def test_a_ratio_is_rounded_and_missing_when_a_side_is_missing() -> None:
    assert harness.ratio(10.0, 4.0, 1) == 2.5
    assert harness.ratio(6.2, 6.3, 2) == 0.98
    assert harness.ratio(None, 4.0, 1) is None
    assert harness.ratio(10.0, None, 1) is None
    assert harness.ratio(10.0, 0.0, 1) is None  # no latency to divide by: no ratio, not infinity
