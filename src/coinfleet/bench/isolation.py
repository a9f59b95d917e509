"""`coinfleet bench isolation`: a fast model's p99 alone, then beside slow, crashing and hanging models.

Both phases run the same feed on a fresh database, taking turns (alone, beside, alone, …), and each
phase's latencies are pooled over its turns. The neighbours: one model burning 50 ms of CPU per
row, one whose runner process aborts every third batch, one whose runner never answers (killed at its
batch timeout, then quarantined). The fast model is a real trained model served the default way.
Latency runs from the metric row's commit, as the ingester sees it, to the prediction's commit; the
table also shows it from the trigger's clock, which includes the ingester's own commit (see ingester).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import numpy as np
from rich.table import Table

from coinfleet.bench.harness import (
    add_models,
    bench_bundle,
    bench_database,
    market,
    quantile_ms,
    ratio,
    reset_figures,
    wait_for_lanes,
)
from coinfleet.bench.ingester import CommitLog, Ingester
from coinfleet.config import Settings
from coinfleet.features.cache import ObservationService
from coinfleet.lanes.factory import ProcessRunnerFactory, runner_limits
from coinfleet.lanes.lane import Lane
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.hogs import HogPolicy
from coinfleet.runners.process import ProcessRunner
from coinfleet.runners.protocol import Runner

FAST = "fast"
WARMUP_ROWS = 200  #: the measured feed starts after these (the warm-up feeds fewer)
NEIGHBOURS = {
    "slow": "coinfleet.bench.faulty:load_slow",
    "crashing": "coinfleet.bench.faulty:load_crashing",
    "hanging": "coinfleet.bench.faulty:load_hanging",
}
NEIGHBOUR_SETTINGS: dict[str, dict[str, object]] = {
    "slow": {"backlog_policy": "newest", "batch_timeout_seconds": 60},
    "crashing": {},
    "hanging": {"batch_timeout_seconds": 2},
}


class NeighbourFactory:
    """Neighbours get their misbehaving loaders; every other model is served the default way."""

    def __init__(self, default: ProcessRunnerFactory) -> None:
        self._default = default

    async def __call__(self, model: ModelRecord, artifact: bytes) -> Runner:
        """A started runner for the model."""
        if model.name not in NEIGHBOURS:
            return await self._default(model, artifact)
        runner = ProcessRunner(
            LoaderSpec(function=NEIGHBOURS[model.name]),
            name=model.name,
            limits=runner_limits(model.settings),
            hogs=self._default.hogs,
        )
        await runner.start()
        return runner


async def phase(
    settings: Settings,
    bundle: ModelBundle,
    rows: list[MetricRow],
    *,
    neighbours: bool,
    options: dict[str, float],
) -> dict[str, Any]:
    """Feed the rows at the rate and return the fast model's figures (and the neighbours' errors)."""
    async with bench_database(settings) as db:
        await add_models(db.pool, bundle, [FAST])
        names = [FAST]
        if neighbours:
            for name, extra in NEIGHBOUR_SETTINGS.items():
                await add_models(db.pool, bundle, [name], **extra)
            names += list(NEIGHBOURS)
        hogs = HogPolicy()
        default = ProcessRunnerFactory(
            pool=db.pool, observations=ObservationService(db.pool), compile_onnx=True, hogs=hogs
        )
        supervisor = Supervisor(
            pool=db.pool, dsn=db.dsn, settings=settings, runner_factory=NeighbourFactory(default), hogs=hogs
        )
        task = asyncio.create_task(supervisor.run())
        try:
            lanes = await wait_for_lanes(supervisor, len(names))
            async with Ingester(db.dsn, rows) as ingester:
                await ingester.feed(rate=options["rate"], seconds=options["warmup"])
                fast = _lane(lanes, FAST)
                reset_figures([fast])
                await ingester.feed(WARMUP_ROWS, rate=options["rate"], seconds=options["seconds"])
                await asyncio.sleep(1.0)
                result = _figures(fast, lanes, ingester.commits)
        finally:
            supervisor.stop()
            await task
    return result


def pooled(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several runs of one phase, their latencies taken together."""
    samples = np.concatenate([p["samples"] for p in phases])
    from_insert = np.concatenate([p["samples_from_insert"] for p in phases])
    errors: dict[str, Counter[str]] = {}
    for p in phases:
        for name, counts in p["neighbour_errors"].items():
            errors.setdefault(name, Counter()).update(counts)
    return {
        "predictions": sum(p["predictions"] for p in phases),
        "p50_ms": quantile_ms(samples, 0.5),
        "p99_ms": quantile_ms(samples, 0.99),
        "p99_from_insert_ms": quantile_ms(from_insert, 0.99),
        "neighbour_errors": {name: dict(counts) for name, counts in errors.items()},
    }


def _lane(lanes: list[Lane], name: str) -> Lane:
    return next(lane for lane in lanes if lane.model.name == name)


def _figures(fast: Lane, lanes: list[Lane], commits: CommitLog) -> dict[str, Any]:
    return {
        "predictions": len(fast.stats.latencies),
        "samples": commits.since_commit(fast.stats),
        "samples_from_insert": fast.stats.latencies.values(),
        "neighbour_errors": {
            lane.model.name: dict(lane.stats.errors) for lane in lanes if lane.model.name != FAST
        },
    }


async def run(
    settings: Settings, *, rate: float = 50, seconds: float = 20, rounds: int = 3
) -> dict[str, Any]:
    """Both phases, same feed, taking turns `rounds` times (so a drift of the machine hits both alike);
    the ratio of the fast model's p99 is the verdict."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    rows = await asyncio.to_thread(market, int(rate * seconds) + 2 * WARMUP_ROWS)
    options = {"rate": rate, "seconds": seconds, "warmup": 3.0}
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(rounds):
        for neighbours in (False, True):
            runs[neighbours].append(
                await phase(settings, bundle, rows, neighbours=neighbours, options=options)
            )
    alone, beside = pooled(runs[False]), pooled(runs[True])
    return {
        "p99_alone_ms": alone["p99_ms"],
        "p99_with_neighbours_ms": beside["p99_ms"],
        "ratio": ratio(beside["p99_ms"], alone["p99_ms"], 2),
        "ratio_from_insert": ratio(beside["p99_from_insert_ms"], alone["p99_from_insert_ms"], 2),
        "alone": alone,
        "with_neighbours": beside,
        "rate": rate,
        "rounds": rounds,
    }


def render(result: dict[str, Any]) -> Table:
    """The fast model alone and beside its neighbours."""
    table = Table(
        title=f"isolation — fast model p99 beside slow, crashing and hanging models: ×{result['ratio']}"
        f" (goal ≤ 1.25); from the insert, before the metric's commit: ×{result['ratio_from_insert']}"
    )
    columns = ("phase", "predictions", "p50 ms", "p99 ms", "p99 ms from insert", "neighbour failures")
    for column in columns:
        table.add_column(column, justify="left" if column in ("phase", "neighbour failures") else "right")
    for label, key in (("alone", "alone"), ("with neighbours", "with_neighbours")):
        figures = result[key]
        errors = ", ".join(f"{n}: {sum(e.values())}" for n, e in figures["neighbour_errors"].items()) or "-"
        table.add_row(
            label,
            str(figures["predictions"]),
            _ms(figures["p50_ms"]),
            _ms(figures["p99_ms"]),
            _ms(figures["p99_from_insert_ms"]),
            errors,
        )
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
