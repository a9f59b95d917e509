"""`coinfleet bench fleet`: 50 active models in one process at a steady feed — the memory of each
runner process, the lanes' lag, and the predictions per second; with `compare`, the same feed first with
fewer models (20), each on a fresh database, to show whether 50 keep up where 20 do.

Every model is a copy of the benchmark's XGBoost model, compiled to ONNX and served by a runner
process of its own (the default). A runner's memory is read from /proc: resident (RSS, shared pages
counted in full) and proportional (PSS, shared pages split between the processes that map them), and
the Python packages whose native libraries it has mapped — what a runner carries besides its model.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from coinfleet.bench.harness import (
    add_models,
    bench_bundle,
    bench_database,
    drain,
    leased_supervisor,
    market,
    reset_figures,
    wait_for_lanes,
)
from coinfleet.bench.ingester import Ingester
from coinfleet.bench.throughput import BEHIND_LIMIT_SECONDS
from coinfleet.config import Settings
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle

SETTLE_SECONDS = 3.0  #: the first seconds of the feed, while the lanes' batches settle, are not measured
SAMPLE_SECONDS = 0.5  #: how often every lane's lag is read
RSS_GOAL_MIB = 150.0
START_SECONDS = 900.0  #: the most the 50 lanes (compile once, then 50 runner processes) may take to start
DRAIN_SECONDS = 30.0
_SITE_PACKAGE = re.compile(r"/site-packages/([A-Za-z0-9_]+)")


async def run(
    settings: Settings,
    *,
    models: int = 50,
    rate: float = 300,
    seconds: float = 30,
    compare: int | None = None,
) -> dict[str, Any]:
    """Start `models` lanes, feed `rate` events/s for SETTLE_SECONDS + `seconds`, and measure; with
    `compare`, measure `compare` models the same way first (its figures under "compared")."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    rows = await asyncio.to_thread(market, int(rate * (SETTLE_SECONDS + seconds)) + 1000)
    compared = None if compare is None else await measure(settings, bundle, rows, compare, rate, seconds)
    result = await measure(settings, bundle, rows, models, rate, seconds)
    if compared is not None:
        result["compared"] = compared
        result["keeps_up_where_compared_does"] = result["kept_up"] or not compared["kept_up"]
    return result


async def measure(
    settings: Settings, bundle: ModelBundle, rows: list[MetricRow], models: int, rate: float, seconds: float
) -> dict[str, Any]:
    """One fleet of `models` lanes on a fresh database, fed `rate` events/s, measured."""
    async with bench_database(settings) as db, Ingester(db.dsn, rows) as ingester:
        await add_models(db.pool, bundle, [f"fleet{i:02d}" for i in range(models)])
        supervisor = leased_supervisor(db, settings)
        task = asyncio.create_task(supervisor.run())
        try:
            lanes = await wait_for_lanes(supervisor, models, timeout=START_SECONDS)
            feed = asyncio.create_task(ingester.feed(0, rate=rate, seconds=SETTLE_SECONDS + seconds))
            await asyncio.sleep(SETTLE_SECONDS)
            before = sum(reset_figures(lanes).values())
            started = time.monotonic()
            lags = await sample_lags(supervisor, feed)
            elapsed = time.monotonic() - started
            predictions = sum(sum(lane.stats.predictions.values()) for lane in lanes) - before
            await supervisor.refresh_lag()
            behind = max(lane.stats.lag_events for lane in lanes)  # at the feed's end
            memory = runner_memory([pid for pid in supervisor.runner_pids() if pid is not None])
            await drain(supervisor, DRAIN_SECONDS)
        finally:
            supervisor.stop()
            await task
    return summarise(models, rate, lags, predictions / elapsed, memory, behind)


async def sample_lags(supervisor: Supervisor, feed: asyncio.Task[int]) -> list[int]:
    """Every lane's lag in events, every SAMPLE_SECONDS until the feed ends."""
    lags: list[int] = []
    while not feed.done():
        await asyncio.sleep(SAMPLE_SECONDS)
        await supervisor.refresh_lag()
        lags.extend(lane.stats.lag_events for lane in supervisor.lanes)
    await feed
    return lags


def runner_memory(pids: list[int]) -> dict[str, Any]:
    """RSS and PSS in MiB per runner, and the site-packages with native code mapped in any of them."""
    rss, pss, packages = [], [], set()
    for pid in pids:
        try:
            rss.append(_kib(Path(f"/proc/{pid}/status"), "VmRSS:") / 1024)
            pss.append(_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") / 1024)
            packages |= set(_SITE_PACKAGE.findall(Path(f"/proc/{pid}/maps").read_text()))
        except OSError:  # a runner that restarted meanwhile
            continue
    return {"rss": rss, "pss": pss, "packages": sorted(packages)}


def _kib(path: Path, field: str) -> float:
    for line in path.read_text().splitlines():
        if line.startswith(field):
            return float(line.split()[1])
    raise OSError(f"no {field} in {path}")


def summarise(
    models: int,
    rate: float,
    lags: list[int],
    predictions_per_s: float,
    memory: dict[str, Any],
    behind: int,
) -> dict[str, Any]:
    """The benchmark's figures; kept up as the throughput benchmark says it: no lane more than
    BEHIND_LIMIT_SECONDS of feed behind when the feed ends."""
    rss, pss = np.asarray(memory["rss"]), np.asarray(memory["pss"])
    return {
        "models": models,
        "runners": len(rss),
        "events_per_s": rate,
        "rss_per_runner_mib": {"p50": _round(np.median(rss)), "max": _round(rss.max(initial=0))},
        "pss_per_runner_mib": {"p50": _round(np.median(pss)), "max": _round(pss.max(initial=0))},
        "rss_total_mib": _round(rss.sum()),
        "pss_total_mib": _round(pss.sum()),
        "runner_packages": memory["packages"],
        "lag_p99_events": _round(np.quantile(lags, 0.99)) if lags else None,
        "predictions_per_s": _round(predictions_per_s),
        "behind_events": behind,
        "kept_up": behind <= rate * BEHIND_LIMIT_SECONDS,
    }


def _round(value: float) -> float:
    return round(float(value), 1)


def render(result: dict[str, Any]) -> Table:
    """One row per figure, one column per fleet (the compared one first)."""
    fleets = [f for f in (result.get("compared"), result) if f is not None]
    table = Table(
        title=f"fleet at {result['events_per_s']:,.0f} events/s "
        f"(goal: runners ≤ {RSS_GOAL_MIB:.0f} MiB, every lane keeps up)"
    )
    table.add_column("figure")
    for fleet in fleets:
        table.add_column(f"{fleet['models']} models", justify="right")
    for name, show in ROWS:
        table.add_row(name, *(show(fleet) for fleet in fleets))
    return table


def _pair(figures: dict[str, float]) -> str:
    return f"{figures['p50']:.0f} / {figures['max']:.0f}"


ROWS: list[tuple[str, Any]] = [
    ("runners", lambda f: str(f["runners"])),
    ("RSS per runner, MiB (p50 / max)", lambda f: _pair(f["rss_per_runner_mib"])),
    ("PSS per runner, MiB (p50 / max)", lambda f: _pair(f["pss_per_runner_mib"])),
    ("RSS / PSS of all runners, MiB", lambda f: f"{f['rss_total_mib']:,.0f} / {f['pss_total_mib']:,.0f}"),
    ("native packages in runners", lambda f: ", ".join(f["runner_packages"])),
    ("lag p99, events", lambda f: str(f["lag_p99_events"])),
    ("behind at the feed's end, events", lambda f: f"{f['behind_events']:,}"),
    (
        "predictions/s (fed)",
        lambda f: f"{f['predictions_per_s']:,.0f} ({f['models'] * f['events_per_s']:,.0f})",
    ),
    ("kept up (≤ 1 s of feed behind)", lambda f: "yes" if f["kept_up"] else "no"),
]
