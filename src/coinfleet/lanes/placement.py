"""Which worker runs which model: a pure function every worker computes alike from the same view.

Heaviest model first, each to the worker with the least weight per capacity after taking it (ties to
the lower worker id): with equal capacities the loads of any two workers differ by at most the
heaviest model's weight. Every worker reads the same live workers and active models from the same
database, so they agree without talking; while their views differ for a moment, leases keep the
ownership single and the next look settles it.
"""

from __future__ import annotations

from collections.abc import Mapping


def place(models: Mapping[int, float], workers: Mapping[str, float]) -> dict[int, str]:
    """Each model (id → weight) to one worker (id → capacity > 0); {} when there is no worker."""
    if not workers:
        return {}
    load = dict.fromkeys(sorted(workers), 0.0)
    placed: dict[int, str] = {}
    for model_id, weight in sorted(models.items(), key=lambda item: (-item[1], item[0])):
        worker = min(load, key=lambda w: ((load[w] + weight) / workers[w], w))
        load[worker] += weight
        placed[model_id] = worker
    return placed


def loads(placed: Mapping[int, str], models: Mapping[int, float]) -> dict[str, float]:
    """The total weight each worker was given."""
    totals: dict[str, float] = {}
    for model_id, worker in placed.items():
        totals[worker] = totals.get(worker, 0.0) + models[model_id]
    return totals
