"""`coinfleet bench baseline`: the lane design against the predecessor's sequential loop, same load.

Three setups, each on a fresh database with the same models and the same market rows:
- sequential, as the predecessor ran it: one event at a time through every model, history read again
  per model, native `predict_proba` on one row, one INSERT per prediction;
- sequential with the lanes' serving engine: the same loop, but the shared feature service and the
  verified ONNX graph where one exists — what the engine alone buys;
- lanes: one lane per model (the default serving path).
Each setup is measured on a backlog (throughput) and then under a feed (p99 latency; its first
WARMUP_SECONDS not counted, for every setup alike). The feed's rate is the same for all three: half of
what the predecessor managed on the backlog (at most `rate`), so that it keeps up on average. Its rows
arrive first as a Poisson stream (the same seeded one for every setup), the shape of an ingester's
many coins, then evenly spaced, the predecessor's best case: with no two events ever close together
its p99 is its service time, where under random arrivals events also wait for the ones before them.
The models are RandomForests by default, the kind the predecessor ran (`--algorithm` picks another).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from rich.table import Table

from coinfleet.bench.harness import (
    add_models,
    bench_bundle,
    bench_database,
    market,
    pooled_quantile,
    ratio,
    wait_for_lanes,
)
from coinfleet.bench.ingester import Arrivals, Ingester
from coinfleet.bench.sequential import total_predictions, woken_scorer
from coinfleet.config import Settings
from coinfleet.db.database import Database
from coinfleet.lanes.stats import LaneStats
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.train import Algorithm

Stats = Callable[[], list[LaneStats]]
PREDECESSOR = "sequential (predecessor)"
SETUPS = (PREDECESSOR, "sequential (lanes' engine)", "lanes")
WARMUP_SECONDS = 2.0  #: of the steady feed, before latencies count
#: the feed's two arrival shapes, each measured for `seconds`: Poisson (the headline) and even spacing
ARRIVALS: tuple[Arrivals, ...] = ("poisson", "even")


@asynccontextmanager
async def running(setup: str, db: Database, settings: Settings, models: int) -> AsyncIterator[Stats]:
    """Start one setup's scorer; yield a function returning its per-model stats."""
    if setup == "lanes":
        supervisor = Supervisor(pool=db.pool, dsn=db.dsn, settings=settings)
        task = asyncio.create_task(supervisor.run())
        await wait_for_lanes(supervisor, models)
        try:
            yield lambda: [lane.stats for lane in supervisor.lanes]
        finally:
            supervisor.stop()
            await task
        return
    predecessor = setup == PREDECESSOR
    async with woken_scorer(  # woken like `serve --scheduler sequential`
        db.pool,
        db.dsn,
        poll_interval=settings.poll_interval_seconds,
        fetch_per_model=predecessor,
        serve_onnx=not predecessor,
    ) as scorer:
        task = asyncio.create_task(scorer.run())
        try:
            yield lambda: list(scorer.stats.values())
        finally:
            scorer.stop()
            await task


async def measure_backlog(stats: Stats, limit_seconds: float, idle_seconds: float = 1.0) -> float:
    """Predictions per second while working off a backlog: until nothing moved for `idle_seconds`."""
    started = last_change = time.monotonic()
    base = done = total_predictions(stats())
    while time.monotonic() - started < limit_seconds:
        await asyncio.sleep(0.02)
        now_done = total_predictions(stats())
        if now_done != done:
            done, last_change = now_done, time.monotonic()
        elif done > base and time.monotonic() - last_change >= idle_seconds:
            break
    return (done - base) / max(last_change - started, 1e-9)


async def measure_setup(
    setup: str, settings: Settings, bundle: ModelBundle, rows: list[MetricRow], options: dict[str, Any]
) -> dict[str, Any]:
    """Throughput on a backlog, then p99 under a steady feed, for one setup.

    Without a `feed_rate` in the options (the first setup) the feed runs at half of this setup's
    backlog rate in events/s, capped at `rate`; the result says which rate was used.
    """
    models, backlog, seconds = options["models"], options["backlog"], options["seconds"]
    async with bench_database(settings) as db, Ingester(db.dsn, rows) as ingester:
        await add_models(db.pool, bundle, [f"m{i}" for i in range(models)])
        async with running(setup, db, settings, models) as stats:
            await ingester.feed(rate=1e9, seconds=60, count=backlog)  # the feed below goes on after it
            throughput = await measure_backlog(stats, options["limit_seconds"])
        rate = options.get("feed_rate") or min(options["rate"], max(1.0, throughput / models / 2))
        async with running(setup, db, settings, models) as stats:
            offset = backlog + await ingester.feed(backlog, rate=rate, seconds=WARMUP_SECONDS)
            p99 = {}
            for arrivals in ARRIVALS:  # a scorer's first events meet cold caches: the warm-up is not measured
                for figures in stats():
                    figures.clear_latencies()
                offset += await ingester.feed(offset, rate=rate, seconds=seconds, arrivals=arrivals)
                await asyncio.sleep(1.0)
                p99[arrivals] = pooled_quantile(stats(), 0.99, ingester.commits)
    return {"setup": setup, "predictions_per_s": throughput, "p99_ms": p99, "feed_rate": rate}


async def run(
    settings: Settings,
    *,
    models: int = 3,
    algorithm: Algorithm = "random_forest",
    backlog: int = 2000,
    rate: float = 20,
    seconds: float = 20,
    limit_seconds: float = 30,
) -> dict[str, Any]:
    """All three setups, side by side; the predecessor first, since its capacity sets the feed rate."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home, algorithm)
    fed = rate * (WARMUP_SECONDS + len(ARRIVALS) * seconds)
    rows = await asyncio.to_thread(market, backlog + int(1.2 * fed) + 100)  # room for Poisson's spread
    options = {
        "models": models,
        "backlog": backlog,
        "rate": rate,
        "seconds": seconds,
        "limit_seconds": limit_seconds,
    }
    results = []
    for setup in SETUPS:
        results.append(await measure_setup(setup, settings, bundle, rows, options))
        options["feed_rate"] = results[0]["feed_rate"]
    predecessor, lanes = results[0], results[-1]
    return {
        "throughput_ratio": round(
            lanes["predictions_per_s"] / max(predecessor["predictions_per_s"], 1e-9), 1
        ),
        "p99_ratio": ratio(predecessor["p99_ms"]["poisson"], lanes["p99_ms"]["poisson"], 1),
        "p99_ratio_even": ratio(predecessor["p99_ms"]["even"], lanes["p99_ms"]["even"], 1),
        "models": models,
        "algorithm": algorithm,
        "feed_rate": predecessor["feed_rate"],
        "setups": results,
    }


def render(result: dict[str, Any]) -> Table:
    """One row per setup, then the ratios."""
    table = Table(
        title=f"baseline — {result['models']} {result['algorithm']} models: lanes vs the predecessor's "
        f"loop (throughput ×{result['throughput_ratio']}, p99 ×{result['p99_ratio']} lower with Poisson "
        f"arrivals, ×{result['p99_ratio_even']} with even ones; goals ×50, ×20)"
    )
    rate = f"{result['feed_rate']:.1f} events/s"
    columns = ("setup", "predictions/s (backlog)", f"p99 ms, Poisson {rate}", f"p99 ms, even {rate}")
    for column in columns:
        table.add_column(column, justify="left" if column == "setup" else "right")
    for setup in result["setups"]:
        p99 = [setup["p99_ms"][arrivals] for arrivals in ARRIVALS]
        table.add_row(
            setup["setup"],
            f"{setup['predictions_per_s']:,.0f}",
            *("-" if ms is None else f"{ms:.0f}" for ms in p99),
        )
    return table
