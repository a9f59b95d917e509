"""Models spread over workers by weight, the same on every worker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coinfleet.lanes.placement import loads, place

weights = st.dictionaries(st.integers(1, 10_000), st.floats(0.1, 100), max_size=60)
worker_ids = st.sets(st.text("abcdef0123456789:", min_size=1, max_size=12), min_size=1, max_size=8)


@given(weights, worker_ids)
def test_every_model_goes_to_exactly_one_live_worker(models: dict[int, float], workers: set[str]) -> None:
    placed = place(models, dict.fromkeys(workers, 1.0))
    assert set(placed) == set(models)
    assert set(placed.values()) <= workers


@given(weights, worker_ids)
def test_equal_workers_carry_loads_within_the_heaviest_model(
    models: dict[int, float], workers: set[str]
) -> None:
    totals = loads(place(models, dict.fromkeys(workers, 1.0)), models)
    spread = [totals.get(w, 0.0) for w in workers]
    assert max(spread) - min(spread) <= max(models.values(), default=0.0) + 1e-9


@given(weights, worker_ids)
def test_every_worker_computes_the_same_placement(models: dict[int, float], workers: set[str]) -> None:
    # the order in which a worker read the rows must not matter
    reversed_models = dict(reversed(list(models.items())))
    reversed_workers = dict.fromkeys(sorted(workers, reverse=True), 1.0)
    assert place(models, dict.fromkeys(workers, 1.0)) == place(reversed_models, reversed_workers)


def test_weights_spread_rather_than_counts() -> None:
    placed = place({1: 10.0, 2: 1.0, 3: 1.0, 4: 1.0}, {"a": 1.0, "b": 1.0})
    assert placed[2] == placed[3] == placed[4] != placed[1]


def test_a_worker_of_twice_the_capacity_takes_twice_the_weight() -> None:
    models = dict.fromkeys(range(30), 1.0)
    totals = loads(place(models, {"big": 2.0, "small": 1.0}), models)
    assert totals == {"big": 20.0, "small": 10.0}


def test_no_worker_places_nothing() -> None:
    assert place({1: 1.0}, {}) == {}
