"""`coinfleet bench api`: the throughput benchmark's 20-model load, without and with operator traffic.

Both phases run in one process, one after the other, with the HTTP side in a child process as
`coinfleet serve` runs it (with `--http inline`, in the lanes' event loop), idle in the first phase.
Operator traffic comes from two child processes at nice 19 (`api_clients`), started
before the first phase (imports and one unmeasured round of requests done, so the API's start-up — e.g.
manual scoring loading the active models — is over) and idle until the second: REST lists, filtered
predictions over the stored history (≥ 1M rows), coin detail, statistics, /metrics and MCP calls from
one, an SSE subscriber in the other.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from rich.table import Table

from coinfleet.api import ApiConfig, create_app
from coinfleet.api.process import http_child_until
from coinfleet.api.server import Listening, serving
from coinfleet.api.serving import HttpOptions
from coinfleet.bench import api_clients, cpu_parts
from coinfleet.bench.api_clients import Observed, Traffic
from coinfleet.bench.harness import (
    BENCH_TARGET,
    add_models,
    bench_bundle,
    bench_database,
    market,
    pooled_quantile,
    ratio,
    reset_figures,
    wait_for_lanes,
)
from coinfleet.bench.ingester import Ingester
from coinfleet.config import Settings
from coinfleet.db.database import Database
from coinfleet.db.sql import query
from coinfleet.lanes.lane import Lane
from coinfleet.lanes.supervisor import Supervisor

#: where the HTTP side runs: a child process (as `coinfleet serve`) or the lanes' own event loop
HttpPlacement = Literal["process", "inline"]
#: which operator traffic the second phase has
TrafficKind = Literal["all", "requests", "stream"]
LANES_RATIO_GOAL = 1.25
API_P99_GOAL_MS = 100.0
STREAM_LAG_GOAL_MS = 250.0
SETTLE_SECONDS = 2.0  #: not measured at the start of each phase
WARM_UP_ROUNDS = 30  #: most one-second feeds before the lanes must have scored
HISTORY_START = datetime(2025, 6, 1, tzinfo=UTC)
TOKEN = "bench-token"  #: a throwaway token on a loopback port for one run
HISTORY_MODEL = "history"


async def run(
    settings: Settings,
    *,
    models: int = 20,
    rate: int = 500,
    seconds: float = 10,
    history: int = 1_000_000,
    http: HttpPlacement = "process",
    traffic: TrafficKind = "all",
) -> dict[str, Any]:
    """Feed `rate` events/s to `models` lanes for `seconds`, first alone, then with operator traffic; the
    HTTP side runs in a child process (as `coinfleet serve` runs it) or inline in the lanes' loop."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    rows = await asyncio.to_thread(
        market, int(rate * (2 * (SETTLE_SECONDS + seconds) + WARM_UP_ROUNDS)) + 1000
    )
    async with bench_database(settings) as db, Ingester(db.dsn, rows) as ingester:
        await add_models(db.pool, bundle, [f"m{i:02d}" for i in range(models)])
        await _store_history(db.pool, history)
        supervisor = Supervisor(pool=db.pool, dsn=db.dsn, settings=settings)
        task = asyncio.create_task(supervisor.run())
        try:
            lanes = await wait_for_lanes(supervisor, models)
            async with _http_side(http, db, supervisor, settings) as listening:
                plan = _traffic(listening.base_url, seconds + SETTLE_SECONDS, rows[0].mint)
                roles = tuple(api_clients.PROCESS_NAMES) if traffic == "all" else (traffic,)
                offset = await _warm_up(ingester, lanes, rate)
                # started (imports, one unmeasured round of requests: the API's start-up is done) and
                # idle until `go`
                clients = await asyncio.to_thread(api_clients.start, plan, roles)
                try:
                    parts = _cpu_parts(db)
                    alone, offset, cpu_alone = await _phase(ingester, lanes, offset, rate, seconds, parts)
                    clients.go()
                    loaded, _, cpu_loaded = await _phase(ingester, lanes, offset, rate, seconds, parts)
                    observed: Observed = await asyncio.to_thread(clients.observed)
                finally:
                    await asyncio.to_thread(clients.join, 30)
        finally:
            supervisor.stop()
            await task
    return summarise(alone, loaded, observed, models=models, rate=rate, history=history) | {
        "http": http,
        "traffic": traffic,
        "cores_by_part": {"alone": cpu_alone, "with_api": cpu_loaded},
        "clients_nice": api_clients.CLIENT_NICE,
    }


@asynccontextmanager
async def _http_side(
    placement: HttpPlacement, db: Database, supervisor: Supervisor, settings: Settings
) -> AsyncIterator[Listening]:
    """The HTTP side on a free loopback port, in a child process or in this loop."""
    if placement == "inline":
        config = ApiConfig(dsn=db.dsn, token=TOKEN, reads_need_token=False)
        async with serving(create_app(config), host="127.0.0.1", port=0) as listening:
            yield listening
        return
    at: list[Listening] = []
    options = HttpOptions(host="127.0.0.1", port=0, token=TOKEN, settings=settings, on_listening=at.append)
    stop = asyncio.Event()
    task = asyncio.create_task(http_child_until(options, db, supervisor.all_lanes_started, stop))
    try:
        while not at:
            if task.done():
                await task
            await asyncio.sleep(0.05)
        yield at[0]
    finally:
        stop.set()
        await task


async def _store_history(pool: Any, history: int) -> None:
    async with pool.acquire() as conn:
        model_id = await conn.fetchval(
            query("bench_insert_model"), HISTORY_MODEL, json.dumps(BENCH_TARGET.to_dict())
        )
        await conn.execute(query("bench_history_predictions"), model_id, history, HISTORY_START)
        await conn.execute("ANALYZE coinfleet_predictions")


async def _warm_up(ingester: Ingester, lanes: list[Lane], rate: int) -> int:
    """Feed until every lane has stored predictions (runners started, models compiled); rows fed."""
    offset = 0
    for _ in range(WARM_UP_ROUNDS):
        offset += await ingester.feed(offset, rate=rate, seconds=1.0)
        if all(sum(lane.stats.predictions.values()) for lane in lanes):
            break
    return offset


def _cpu_parts(db: Database) -> Callable[[], Awaitable[cpu_parts.Reading | None]]:
    async def backends() -> dict[int, str]:
        async with db.pool.acquire() as conn:
            return {row["pid"]: row["application_name"] for row in await conn.fetch(query("bench_backends"))}

    return lambda: cpu_parts.read(os.getpid(), backends)


async def _phase(
    ingester: Ingester,
    lanes: list[Lane],
    offset: int,
    rate: int,
    seconds: float,
    parts: Callable[[], Awaitable[cpu_parts.Reading | None]],
) -> tuple[float | None, int, dict[str, float]]:
    """Feed SETTLE_SECONDS + `seconds`; the lanes' pooled p99 (ms) over the measured part, the rows fed
    and the cores each part kept busy meanwhile."""
    feed = asyncio.create_task(ingester.feed(offset, rate=rate, seconds=SETTLE_SECONDS + seconds))
    await asyncio.sleep(SETTLE_SECONDS)
    reset_figures(lanes)
    start = await parts()
    fed = await feed
    end = await parts()
    p99 = pooled_quantile([lane.stats for lane in lanes], 0.99, ingester.commits)
    return p99, offset + fed, cpu_parts.cores(start, end)


def _traffic(base_url: str, seconds: float, mint: str) -> Traffic:
    paths = (
        "/api/models",
        f"/api/predictions?model={HISTORY_MODEL}&limit=100",
        "/api/predictions?tag=alert&probability_min=0.9&limit=50",
        f"/api/predictions?model={HISTORY_MODEL}&since=2025-06-03T00:00:00Z&until=2025-06-04T00:00:00Z&limit=100",
        f"/api/coins/{mint}",
        "/api/statistics?model=m00&since=1h",
        "/api/lag",
        "/metrics",
    )
    tools = (
        ("health", "{}"),
        ("models_list", "{}"),
        ("score_coin", json.dumps({"mint": mint, "models": ["m00"]})),
    )
    return Traffic(
        base_url=base_url, token=TOKEN, seconds=seconds, paths=paths, stream_model="m00", mcp_tools=tools
    )


def _p99(values: list[float]) -> float | None:
    return round(float(np.quantile(values, 0.99)), 1) if values else None


def summarise(
    alone: float | None, loaded: float | None, observed: Observed, *, models: int, rate: int, history: int
) -> dict[str, Any]:
    """The three keys and what they come from."""
    return {
        "lanes_p99_ratio": ratio(loaded, alone, 2),
        "api_p99_ms": _p99(observed.requests_ms),
        "stream_lag_p99_ms": _p99(observed.stream_lag_ms),
        "lanes_p99_ms_alone": None if alone is None else round(alone, 1),
        "lanes_p99_ms_with_api": None if loaded is None else round(loaded, 1),
        "requests": len(observed.requests_ms),
        "stream_events": len(observed.stream_lag_ms),
        "p99_ms_by_path": {path: _p99(ms) for path, ms in sorted(observed.by_path_ms.items())},
        "failures": len(observed.failures),
        "first_failures": observed.failures[:5],
        "models": models,
        "events_per_s": rate,
        "stored_predictions": history,
    }


def render(result: dict[str, Any]) -> Table:
    """The three figures against their goals, then the per-route p99."""
    table = Table(
        title=f"api — {result['models']} models at {result['events_per_s']} events/s, operator traffic beside"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        "lanes' p99 with API load ÷ without", str(result["lanes_p99_ratio"]), f"≤ {LANES_RATIO_GOAL}"
    )
    table.add_row("API p99 ms", str(result["api_p99_ms"]), f"≤ {API_P99_GOAL_MS:g}")
    table.add_row("stream lag p99 ms", str(result["stream_lag_p99_ms"]), f"≤ {STREAM_LAG_GOAL_MS:g}")
    for path, p99 in result["p99_ms_by_path"].items():
        table.add_row(f"  p99 ms {path}", str(p99), "")
    table.add_row("requests / failures", f"{result['requests']} / {result['failures']}", "")
    by_part = result.get("cores_by_part", {})
    for part in sorted(set(by_part.get("alone", {})) | set(by_part.get("with_api", {}))):
        alone, loaded = by_part["alone"].get(part, 0.0), by_part["with_api"].get(part, 0.0)
        table.add_row(f"  cores: {part} (alone → with API)", f"{alone:.2f} → {loaded:.2f}", "")
    table.caption = (
        f"the API clients stand in for operators' machines: here they share the cores, at nice "
        f"{result.get('clients_nice', api_clients.CLIENT_NICE)}"
    )
    return table
