"""PSI on constructed data with known answers, and the reference stored with a model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinfleet.evaluation.drift import (
    MIN_LIVE_VALUES,
    FeatureReference,
    psi,
    reference_of,
    references_of,
)


def test_reference_of_a_uniform_feature_has_ten_equal_bins() -> None:
    ref = reference_of(np.arange(1000, dtype=float))
    assert len(ref.edges) == 9 and ref.missing == 0.0
    assert ref.shares == pytest.approx([0.1] * 10)


def test_a_flag_keeps_its_two_values_and_the_missing_share() -> None:
    ref = reference_of([0.0] * 60 + [1.0] * 20 + [math.nan] * 20)
    assert ref.edges == (0.0, 1.0)
    assert ref.shares == pytest.approx([0.0, 0.6, 0.2]) and ref.missing == pytest.approx(0.2)


def test_the_same_distribution_gives_zero() -> None:
    values = np.random.default_rng(1).normal(size=5000)
    assert psi(reference_of(values), values) == pytest.approx(0.0, abs=1e-12)


def test_known_answer_for_two_bins() -> None:
    ref = FeatureReference(edges=(0.0,), shares=(0.5, 0.5), missing=0.0)
    live = [-1.0] * 20 + [1.0] * 80  # shares 0.2 / 0.8, none missing
    # the missing bin is empty on both sides (floored alike): it adds nothing
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi(ref, live) == pytest.approx(expected)


def test_a_shifted_feature_is_flagged_a_resampled_one_is_not() -> None:
    rng = np.random.default_rng(2)
    ref = reference_of(rng.normal(size=5000))
    assert (psi(ref, rng.normal(size=2000)) or 0) < 0.05
    assert (psi(ref, rng.normal(loc=1.0, size=2000)) or 0) > 0.2


def test_values_going_missing_count_as_drift() -> None:
    ref = reference_of(np.arange(100, dtype=float))
    live = np.concatenate([np.arange(50, dtype=float), np.full(50, math.nan)])
    assert (psi(ref, live) or 0) > 1.0


def test_too_few_live_values_give_no_psi() -> None:
    assert psi(reference_of(np.arange(100.0)), np.arange(MIN_LIVE_VALUES - 1.0)) is None


def test_infinite_values_land_in_the_outer_bins() -> None:
    ref = reference_of(np.arange(100, dtype=float))
    live = np.array([-math.inf] * 50 + [math.inf] * 50)
    assert psi(ref, live) == pytest.approx(psi(ref, np.array([-5.0] * 50 + [500.0] * 50)))


def test_round_trip_through_the_stored_form() -> None:
    refs = references_of(np.array([[1.0, 0.0], [2.0, 1.0], [3.0, math.nan]]), ["a", "b"])
    stored = {name: ref.to_dict() for name, ref in refs.items()}
    assert {name: FeatureReference.from_dict(d) for name, d in stored.items()} == refs
    with pytest.raises(ValueError, match="one share more"):
        FeatureReference.from_dict({"edges": [1.0], "shares": [1.0], "missing": 0})
