"""`coinfleet bench priority`: overload one execution slot with models of weights 1, 2 and 4.

Every model costs the same CPU per row and has more work than the slot can serve, so the served shares
show the scheduler alone: they should follow the weights (1/7, 2/7, 4/7) and nobody may starve.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.table import Table

from coinfleet.bench.harness import (
    add_models,
    bench_bundle,
    bench_database,
    market,
    wait_for_lanes,
)
from coinfleet.bench.ingester import Ingester
from coinfleet.config import Settings
from coinfleet.lanes.factory import runner_limits
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.process import ProcessRunner
from coinfleet.runners.protocol import Runner

WEIGHTS = (1.0, 2.0, 4.0)
CPU_PER_ROW_SECONDS = 0.0005  #: with 40-row batches a batch holds the slot ~20 ms, inside one quantum


async def costly_runner(model: ModelRecord, artifact: bytes) -> Runner:
    """Every model of this benchmark burns the same CPU per row, in its own runner process."""
    runner = ProcessRunner(
        LoaderSpec(function="coinfleet.bench.faulty:load_costly", args=(CPU_PER_ROW_SECONDS,)),
        name=model.name,
        limits=runner_limits(model.settings),
    )
    await runner.start()
    return runner


async def run(settings: Settings, *, seconds: float = 15, backlog: int = 20_000) -> dict[str, Any]:
    """Serve three weighted models from one slot under a backlog; compare served shares to weights."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    rows = await asyncio.to_thread(market, backlog)
    one_slot = settings.model_copy(update={"execution_slots": 1, "batch_max_events": 40})
    async with bench_database(one_slot) as db:
        for weight in WEIGHTS:
            await add_models(db.pool, bundle, [f"weight-{weight:g}"], weight=weight)
        async with Ingester(db.dsn, rows) as ingester:
            await ingester.feed(rate=1e9, seconds=60)
        supervisor = Supervisor(pool=db.pool, dsn=db.dsn, settings=one_slot, runner_factory=costly_runner)
        task = asyncio.create_task(supervisor.run())
        try:
            lanes = await wait_for_lanes(supervisor, len(WEIGHTS))
            await asyncio.sleep(2)  # warm up: every lane has a batch waiting
            before = {lane.model.name: lane.stats.scored for lane in lanes}
            await asyncio.sleep(seconds)
            served = {lane.model.name: lane.stats.scored - before[lane.model.name] for lane in lanes}
        finally:
            supervisor.stop()
            await task
    return summarise(served)


def summarise(served: dict[str, int]) -> dict[str, Any]:
    """Shares against weight shares; the largest absolute difference is the error."""
    total = sum(served.values()) or 1
    weight_total = sum(WEIGHTS)
    models: list[dict[str, Any]] = [
        {
            "model": name,
            "weight": weight,
            "served": served[name],
            "share": served[name] / total,
            "weight_share": weight / weight_total,
        }
        for name, weight in zip(sorted(served, key=lambda n: float(n.split("-")[1])), WEIGHTS, strict=True)
    ]
    return {
        "max_share_error": round(max(abs(m["share"] - m["weight_share"]) for m in models), 3),
        "min_served": min(m["served"] for m in models),
        "models": models,
    }


def render(result: dict[str, Any]) -> Table:
    """One row per model."""
    table = Table(
        title=f"priority — one slot, overloaded (max share error {result['max_share_error']}, goal ≤ 0.10)"
    )
    for column in ("model", "weight", "rows served", "share", "weight share"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for m in result["models"]:
        table.add_row(
            m["model"], f"{m['weight']:g}", str(m["served"]), f"{m['share']:.3f}", f"{m['weight_share']:.3f}"
        )
    return table
