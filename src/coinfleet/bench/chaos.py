"""`coinfleet bench chaos`: three workers, SIGKILLs, a SIGSTOP past the lease and a PostgreSQL restart
while a market is fed; then every (model, event) must be predicted exactly once and every alert must
reach the receiver once, against a clean single-process run of the same rows.

Everything runs on an embedded PostgreSQL of its own in a temporary folder (it is restarted on
purpose): the chaos run's workers are `coinfleet worker` processes, the reference run is one
in-process supervisor on a second database of the same server. Models run inline in the workers
(runner processes add nothing to what is tested here: ownership, fencing and cursors).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from rich.table import Table

from coinfleet.bench import duplicates
from coinfleet.bench.harness import add_models, bench_bundle, market
from coinfleet.bench.workers import WebhookReceiver, WorkerProcesses
from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, fresh_database
from coinfleet.db.sql import query
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.factory import inline_runner
from coinfleet.lanes.serve import run_until
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle

log = structlog.get_logger(__name__)
LEASE_SECONDS = 2.0  #: the workers' lease period: short, so that models move quickly after a kill
FEED_CHUNK_SECONDS = 0.05  #: the feed inserts what has come due this often, one COPY each
SETTLE_SECONDS = 600.0  #: the most the workers may take to catch up and deliver after the feed
#: what the chaos models send: only alerts (every prediction would be a webhook per row)
MODEL_SETTINGS: dict[str, object] = {"send_modes": ["alerts_only"], "alert_threshold": 0.85}


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What the chaos run does."""

    rows: int
    workers: int
    models: int
    kills: int
    feed_seconds: float
    seed: int


@dataclass
class Havoc:
    """What was done to the workers and the server."""

    kills: int = 0
    pauses: int = 0
    postgres_restarts: int = 0
    worker_exits: int = 0  #: workers that exited by themselves (restarted)
    exits: list[str] = field(default_factory=list)  #: each such exit: worker, exit code, when
    began: float = field(default_factory=time.monotonic)  #: when the feed began (set by `wreak`)
    fenced: int = 0  #: batches refused because their lease had passed on (from the workers' logs)
    leases_lost: int = 0  #: leases a worker found taken over at its heartbeat (from the logs)
    actions: list[str] = field(default_factory=list)
    moments: list[tuple[float, str]] = field(default_factory=list)  #: (time.time(), what was done)

    def note(self, action: str) -> None:
        """Remember when `action` was done (to tell what came before a repeated alert)."""
        self.moments.append((time.time(), action))

    def restart_exited(self, procs: WorkerProcesses) -> None:
        """Start again the workers that exited by themselves, counted and noted (with the exit code and
        the time since the feed began, to find the reason in the worker's log)."""
        for index, code in procs.restart_exited().items():
            self.worker_exits += 1
            self.exits.append(
                f"worker{index} exited with code {code} at {time.monotonic() - self.began:.1f}s"
            )
            self.note(f"worker{index} exited with code {code} (restarted)")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one run stored and sent."""

    predictions: set[tuple[str, str, Any]]
    alerts: Counter[str]  #: idempotency key → deliveries (or outbox rows, for the reference)
    repeats: int = 0
    lease_moves: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)  #: why each repeated alert came
    window_ms: dict[str, Any] = field(default_factory=dict)  #: receiver read → answer stored


async def run(
    settings: Settings,
    *,
    rows: int = 100_000,
    workers: int = 3,
    models: int = 4,
    kills: int = 10,
    feed_seconds: float = 90.0,
    seed: int = 1,
) -> dict[str, Any]:
    """The chaos run and the reference run on the same rows, compared."""
    plan = Plan(rows=rows, workers=workers, models=models, kills=kills, feed_seconds=feed_seconds, seed=seed)
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    data = sorted(await asyncio.to_thread(market, rows), key=lambda r: r.timestamp)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coinfleet-chaos-") as folder:
        pgdata = Path(folder) / "pgdata"
        server_dsn, _ = await asyncio.to_thread(embedded.start, pgdata)
        try:
            havoc = Havoc()
            chaos = await chaos_run(server_dsn, pgdata, bundle, data, plan, havoc, Path(folder))
            reference = await reference_run(server_dsn, settings, bundle, data, plan)
        finally:
            await asyncio.to_thread(embedded.stop, pgdata)
            logs = keep_logs(Path(folder) / "logs", settings.home)
    return compare(chaos, reference, havoc, plan, time.monotonic() - started) | {"worker_logs": str(logs)}


def keep_logs(logs: Path, home: Path) -> Path:
    """Copy the workers' logs to $COINFLEET_HOME/bench-logs/chaos (the last run's), so a loss or a
    repeat can be traced after the run's temporary folder is gone."""
    kept = home / "bench-logs" / "chaos"
    shutil.rmtree(kept, ignore_errors=True)
    if logs.is_dir():
        shutil.copytree(logs, kept)
    return kept


async def chaos_run(
    server_dsn: str,
    pgdata: Path,
    bundle: ModelBundle,
    data: Sequence[MetricRow],
    plan: Plan,
    havoc: Havoc,
    folder: Path,
) -> Outcome:
    """Feed the rows to `plan.workers` worker processes while killing, pausing and restarting."""
    dsn = await fresh_database(server_dsn, "chaos")
    receiver = WebhookReceiver()
    pool = await create_pool(dsn, max_size=4)
    started = time.time()
    try:
        await add_models(pool, bundle, model_names(plan.models), **MODEL_SETTINGS)
        procs = WorkerProcesses(plan.workers, worker_env(dsn, receiver.url), folder / "logs")
        try:
            mayhem = asyncio.create_task(wreak(procs, pgdata, plan, havoc, pool))
            try:
                await feed(dsn, data, plan.feed_seconds)
                await mayhem
            finally:
                mayhem.cancel()
            havoc_over = time.time()
            await settle(pool, procs, havoc)
            await asyncio.sleep(3 * LEASE_SECONDS)  # late deliveries of alerts already marked would show
        finally:
            await asyncio.to_thread(procs.stop)
        havoc.fenced, havoc.leases_lost = procs.log_count("lane_fenced"), procs.log_count("lease_lost")
        async with pool.acquire() as conn:
            return Outcome(
                predictions={(r[0], r[1], r[2]) for r in await conn.fetch(query("prediction_keys"))},
                alerts=receiver.counts(),
                repeats=await conn.fetchval(query("repeated_predictions")),
                lease_moves=await conn.fetchval(query("lease_moves")),
                duplicates=await duplicates.explain(conn, receiver.arrivals, havoc.moments, started),
                window_ms=await duplicates.answer_to_commit(conn, receiver.arrivals, havoc_over),
            )
    finally:
        await pool.close()
        receiver.close()


def model_names(count: int) -> list[str]:
    """The chaos models' names."""
    return [f"chaos{i}" for i in range(count)]


def worker_env(dsn: str, webhook_url: str) -> dict[str, str]:
    """The environment of every chaos worker."""
    return {
        "DATABASE_URL": dsn,
        "COINFLEET_RUNNER": "inline",
        "COINFLEET_LEASE_SECONDS": str(LEASE_SECONDS),
        "COINFLEET_POLL_INTERVAL_SECONDS": "0.5",
        "COINFLEET_DEFAULT_WEBHOOK_URL": webhook_url,
        "COINFLEET_WEBHOOK_ALLOW_PRIVATE": "true",
        "COINFLEET_WEBHOOK_BACKOFF_INITIAL_SECONDS": "0.2",
        "COINFLEET_WEBHOOK_BACKOFF_MAX_SECONDS": "2",
        "COINFLEET_LOG_LEVEL": "info",
        "COINFLEET_LOG_FORMAT": "json",
        "COINFLEET_EXECUTION_SLOTS": "1",
    }


async def feed(dsn: str, data: Sequence[MetricRow], seconds: float) -> None:
    """Insert the rows evenly over `seconds`, one COPY per chunk; a chunk whose insert failed (the
    server restarted) is sent again unless it landed."""
    chunks = max(1, int(seconds / FEED_CHUNK_SECONDS))
    size = -(-len(data) // chunks)
    conn: asyncpg.Connection | None = None
    started = time.monotonic()
    for index, start in enumerate(range(0, len(data), size)):
        await asyncio.sleep(max(0.0, started + index * FEED_CHUNK_SECONDS - time.monotonic()))
        conn = await insert_chunk(dsn, conn, data[start : start + size])
    if conn is not None:
        await conn.close()


async def insert_chunk(
    dsn: str, conn: asyncpg.Connection | None, chunk: Sequence[MetricRow]
) -> asyncpg.Connection:
    """Insert one chunk exactly once, reconnecting as often as needed; return the connection."""
    while True:
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(dsn)
                if await landed(conn, chunk):
                    return conn
            await insert_metrics(conn, chunk)
            return conn
        except Exception as exc:  # a connection cut mid-COPY fails in several ways, asyncpg's own too
            log.info("chaos_feed_retry", error=f"{type(exc).__name__}: {exc}")
            if conn is not None:
                conn.terminate()
            conn = None
            await asyncio.sleep(0.2)


async def landed(conn: asyncpg.Connection, chunk: Sequence[MetricRow]) -> bool:
    """Whether the chunk's first row is stored (a COPY lands whole or not at all)."""
    first = chunk[0]
    found = await conn.fetchval(
        'SELECT count(*) FROM coin_metrics WHERE mint = $1 AND "timestamp" = $2', first.mint, first.timestamp
    )
    return bool(found)


async def wreak(procs: WorkerProcesses, pgdata: Path, plan: Plan, havoc: Havoc, pool: asyncpg.Pool) -> None:
    """At random moments of the feed: SIGKILL a random worker `plan.kills` times (and restart it),
    SIGSTOP one that holds a lease past that lease once, restart PostgreSQL once; restart workers that exit
    meanwhile."""
    rng = random.Random(plan.seed)
    moments = sorted(
        [(rng.uniform(0.05, 0.9) * plan.feed_seconds, "kill") for _ in range(plan.kills)]
        + [
            (rng.uniform(0.2, 0.6) * plan.feed_seconds, "pause"),
            (rng.uniform(0.3, 0.8) * plan.feed_seconds, "restart"),
        ]
    )
    started = havoc.began = time.monotonic()
    paused: set[int] = set()
    resumes: list[asyncio.Task[None]] = []
    for at, action in moments:
        while time.monotonic() - started < at:
            havoc.restart_exited(procs)
            await asyncio.sleep(0.2)
        if action == "kill":
            index = rng.choice([i for i in range(len(procs)) if i not in paused])
            havoc.note(f"kill worker{index} (pid {procs.pid(index)})")
            procs.kill(index)
            procs.restart(index)
            havoc.kills += 1
        elif action == "pause":
            index = await lease_holder(procs, pool, rng)
            paused.add(index)
            havoc.note(f"pause worker{index} (pid {procs.pid(index)})")
            procs.pause(index)
            havoc.pauses += 1
            resumes.append(asyncio.create_task(resume_later(procs, index, paused, havoc)))
        else:
            havoc.note("restart PostgreSQL")
            await asyncio.to_thread(restart_postgres, pgdata)
            havoc.note("PostgreSQL back")
            havoc.postgres_restarts += 1
        havoc.actions.append(f"{at:.1f}s {action}")
    await asyncio.gather(*resumes)


async def lease_holder(procs: WorkerProcesses, pool: asyncpg.Pool, rng: random.Random) -> int:
    """A random worker holding a lease now (so pausing it past the lease must fence it); any worker when
    none can be told."""
    try:
        async with pool.acquire() as conn:
            holders = {row[0] for row in await conn.fetch(query("lease_holder_pids"))}
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        holders = set()
    choices = [i for i in range(len(procs)) if procs.pid(i) in holders] or list(range(len(procs)))
    return rng.choice(choices)


async def resume_later(procs: WorkerProcesses, index: int, paused: set[int], havoc: Havoc) -> None:
    """SIGCONT the worker after 2.5 lease periods."""
    await asyncio.sleep(2.5 * LEASE_SECONDS)
    havoc.note(f"resume worker{index}")
    procs.resume(index)
    paused.discard(index)


def restart_postgres(pgdata: Path) -> None:
    """Stop and start the embedded server; its DSN must not change (the workers keep theirs)."""
    before = embedded.status(pgdata)
    embedded.stop(pgdata)
    time.sleep(0.5)
    embedded.start(pgdata)
    after = embedded.status(pgdata)
    if after.socket_dir != before.socket_dir:
        raise RuntimeError(f"the restarted server moved from {before.socket_dir} to {after.socket_dir}")


async def settle(pool: asyncpg.Pool, procs: WorkerProcesses, havoc: Havoc) -> None:
    """Until every model's cursor is at the last event and no alert is pending."""
    async with asyncio.timeout(SETTLE_SECONDS):
        while True:
            havoc.restart_exited(procs)
            try:
                async with pool.acquire() as conn:
                    if await behind(conn) == 0:
                        return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            await asyncio.sleep(0.5)


async def behind(conn: asyncpg.Connection) -> int:
    """Models not at the last event, plus alerts not yet delivered."""
    models: int = await conn.fetchval(query("models_behind"))
    return models + int(await conn.fetchval(query("pending_alert_count")))


async def reference_run(
    server_dsn: str, settings: Settings, bundle: ModelBundle, data: Sequence[MetricRow], plan: Plan
) -> Outcome:
    """The same models and rows through one in-process supervisor with nothing going wrong."""
    dsn = await fresh_database(server_dsn, "reference")
    pool = await create_pool(dsn, max_size=8)
    clean = settings.model_copy(
        update={"default_webhook_url": "http://127.0.0.1:9/webhook", "poll_interval_seconds": 0.5}
    )
    try:
        await add_models(pool, bundle, model_names(plan.models), **MODEL_SETTINGS)
        async with pool.acquire() as conn:
            await insert_metrics(conn, data)
        supervisor = Supervisor(pool=pool, dsn=dsn, settings=clean, runner_factory=inline_runner)
        stop = asyncio.Event()
        running = asyncio.create_task(run_until(supervisor, stop))
        await caught_up(pool)
        stop.set()
        await running
        async with pool.acquire() as conn:
            keys = await conn.fetch(query("alert_keys"))
            return Outcome(
                predictions={(r[0], r[1], r[2]) for r in await conn.fetch(query("prediction_keys"))},
                alerts=Counter(r[0] for r in keys),
            )
    finally:
        await pool.close()


async def caught_up(pool: asyncpg.Pool) -> None:
    """Until every model's cursor is at the last event (pending alerts are not delivered here)."""
    async with asyncio.timeout(SETTLE_SECONDS):
        while True:
            async with pool.acquire() as conn:
                if await conn.fetchval(query("models_behind")) == 0:
                    return
            await asyncio.sleep(0.5)


def compare(chaos: Outcome, reference: Outcome, havoc: Havoc, plan: Plan, seconds: float) -> dict[str, Any]:
    """The figures: lost and duplicated predictions and alerts against the reference."""
    expected_alerts = set(reference.alerts)
    lost = reference.predictions - chaos.predictions
    return {
        "rows": plan.rows,
        "workers": plan.workers,
        "models": plan.models,
        "kills": havoc.kills,
        "pauses": havoc.pauses,
        "postgres_restarts": havoc.postgres_restarts,
        "worker_exits": havoc.worker_exits,
        "worker_exit_notes": havoc.exits,
        "predictions": len(chaos.predictions),
        "expected_predictions": len(reference.predictions),
        "lost": len(lost),
        "lost_by_model": dict(Counter(model for model, _, _ in lost)),
        "lost_metric_ts": [str(min(ts for _, _, ts in lost)), str(max(ts for _, _, ts in lost))]
        if lost
        else [],
        "unexpected": len(chaos.predictions - reference.predictions),
        "duplicated": chaos.repeats,
        "alerts": len(chaos.alerts),
        "expected_alerts": len(expected_alerts),
        "alerts_lost": len(expected_alerts - set(chaos.alerts)),
        "alerts_duplicated": sum(n - 1 for n in chaos.alerts.values()),
        # what the receiver saw: every request, and the alerts it acted on, each once however often it
        # came (a receiver drops a repeat by its idempotency key, docs/webhooks.md)
        "alert_deliveries": sum(chaos.alerts.values()),
        "alerts_acted_on": len(chaos.alerts),
        "alerts_unexpected": len(set(chaos.alerts) - expected_alerts),
        "lease_moves": chaos.lease_moves,
        "fenced_batches": havoc.fenced,
        "leases_lost": havoc.leases_lost,
        "seconds": round(seconds, 1),
        "actions": havoc.actions,  #: planned moments, in seconds since the feed began
        "alert_duplicates": chaos.duplicates,
        "answer_to_commit_ms": chaos.window_ms,
    }


def render(result: dict[str, Any]) -> Table:
    """One row per figure."""
    title = f"chaos — {result['rows']:,} rows, {result['workers']} workers, {result['models']} models"
    table = Table(
        title=f"{title} (goal: 0 lost / 0 duplicated; every alert acted on once, repeats dropped by key)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in (
        "kills", "pauses", "postgres_restarts", "worker_exits", "expected_predictions", "predictions", "lost",
        "duplicated", "unexpected", "expected_alerts", "alerts", "alerts_lost", "alerts_duplicated",
        "alert_deliveries", "alerts_acted_on", "alerts_unexpected", "lease_moves", "fenced_batches",
        "leases_lost", "seconds",
    ):  # fmt: skip
        table.add_row(name, f"{result[name]:,}" if isinstance(result[name], int) else str(result[name]))
    return table
