"""`coinfleet bench alerts`: webhook delivery speed per model, and what a receiver outage costs.

Throughput: a backlog of queued alerts delivered to a local receiver (its own process) that answers
every request after 1 ms — one busy model alone with the default settings (4 requests in flight, each
coin's alerts in order), the same with one request in flight (all of the model's alerts in order),
and several models at once; a model's rate is its alerts over the time its lane took.
Outage: the receiver is down for 10 minutes while alerts keep being queued, with the default delivery
settings — every time constant of delivery (probe backoff, its cap and jitter, the maximum age) and
the outage itself divided by `scale`, so the run takes seconds, not minutes; afterwards every alert
must arrive once, in order per model, and none may be dead.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from rich.table import Table

from coinfleet.alerts.delivery import Deliverer
from coinfleet.alerts.outbox import OutboxItem, write_outbox
from coinfleet.bench.harness import add_models, bench_bundle, bench_database, market
from coinfleet.config import Settings
from coinfleet.db.database import Database
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord

RECEIVER_DELAY_MS = 1.0
SERIAL = 1  #: requests in flight per model in the comparison run (strict order per model)
OUTAGE_BURSTS = 10  #: alerts are queued in this many bursts while the receiver is down


class ReceiverProcess:
    """The benchmark's receiver, in its own process on a fixed port; stopped and started for outages."""

    def __init__(self, port: int, delay_ms: float) -> None:
        self.port = port
        self._delay_ms = delay_ms
        self._process: asyncio.subprocess.Process | None = None
        self.keys: list[str] = []  #: keys received by receivers stopped before
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def start(self) -> None:
        """Start listening (the same port every time)."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "coinfleet.bench.webhook_receiver",
            str(self.port),
            str(self._delay_ms),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        await asyncio.wait_for(self._process.stdout.readline(), 30)

    async def received(self) -> tuple[list[str], int]:
        """Every key received so far (this run and the ones before) and the connections used."""
        if self._process is None:
            return list(self.keys), self.connections
        async with httpx.AsyncClient(trust_env=False) as client:
            data = (await client.get(f"http://127.0.0.1:{self.port}/received")).json()
        return self.keys + data["keys"], self.connections + data["connections"]

    async def stop(self) -> None:
        """Stop listening, keeping what was received."""
        if self._process is None:
            return
        self.keys, self.connections = await self.received()
        self._process.kill()
        await self._process.wait()
        self._process = None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run(
    settings: Settings,
    *,
    models: int = 4,
    alerts: int = 500,
    scale: float = 60.0,
    outage_seconds: float = 600.0,
) -> dict[str, Any]:
    """Measure throughput, then an outage, each on its own models in one throwaway database."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    rows = await asyncio.to_thread(market, alerts)
    config = settings.model_copy(update={"webhook_allow_private": True})
    receiver = ReceiverProcess(free_port(), RECEIVER_DELAY_MS)
    serial = config.model_copy(update={"webhook_in_flight_per_model": SERIAL})
    async with bench_database(config) as db, _receiving(receiver):
        add = functools.partial(add_models, db.pool, bundle, webhook_url=receiver.url)
        alone, alone_serial = await add(["alone"]), await add(["alone-serial"])
        fleet = await add([f"fleet-{i}" for i in range(models)])
        down = await add([f"down-{i}" for i in range(models)])
        measured = {
            "alone": await _throughput(db, config, receiver, alone, rows),
            "alone_serial": await _throughput(db, serial, receiver, alone_serial, rows),
            "fleet": await _throughput(db, config, receiver, fleet, rows),
        }
        outage = await _outage(db, scaled(config, scale), receiver, down, rows, outage_seconds, scale)
        keys, _ = await receiver.received()
        one_at_a_time = [*alone_serial] + (
            [*alone, *fleet, *down] if config.webhook_in_flight_per_model == 1 else []
        )
        order = await _order(db.pool, keys, strict=[m.id for m in one_at_a_time])
    return {
        "alerts_per_s_per_model": measured["alone"]["slowest_per_s"],
        "alerts_per_s_per_model_serial": measured["alone_serial"]["slowest_per_s"],
        "dead_after_outage": outage["dead"],
        "duplicates": len(keys) - len(set(keys)),
        "order_per_model_kept": order["per_model"],
        "order_per_coin_kept": order["per_coin"],
        "models": models,
        "alerts_per_model": alerts,
        "receiver_delay_ms": RECEIVER_DELAY_MS,
        "in_flight_per_model": config.webhook_in_flight_per_model,
        **measured,
        "outage": outage | {"scale": scale, "outage_seconds_equivalent": outage_seconds},
    }


@asynccontextmanager
async def _receiving(receiver: ReceiverProcess) -> AsyncIterator[None]:
    await receiver.start()
    try:
        yield
    finally:
        await receiver.stop()


def scaled(settings: Settings, scale: float) -> Settings:
    """The settings with every time constant of delivery divided by `scale`."""
    return settings.model_copy(
        update={
            name: getattr(settings, name) / scale
            for name in (
                "webhook_backoff_initial_seconds",
                "webhook_backoff_max_seconds",
                "webhook_backoff_jitter_seconds",
                "webhook_max_age_seconds",
            )
        }
    )


async def _queue(
    pool: asyncpg.Pool, models: Sequence[ModelRecord], rows: Sequence[MetricRow], url: str
) -> None:
    """Queue one alert per row for every model, as lanes would."""
    async with pool.acquire() as conn:
        for model in models:
            items = [OutboxItem(url=url, row=r, probability=0.9, tag="alert", suppressed=None) for r in rows]
            async with conn.transaction():
                await write_outbox(conn, model, items, {})


@asynccontextmanager
async def _delivering(db: Database, settings: Settings) -> AsyncIterator[None]:
    deliverer = Deliverer(pool=db.pool, dsn=db.dsn, settings=settings)
    task = asyncio.create_task(deliverer.run())
    try:
        yield
    finally:
        deliverer.stop()
        await task


async def _delivered(pool: asyncpg.Pool) -> dict[int, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT model_id, count(*) AS n FROM coinfleet_alerts WHERE state = 'delivered' GROUP BY model_id"
        )
    return {r["model_id"]: r["n"] for r in rows}


async def _throughput(
    db: Database,
    settings: Settings,
    receiver: ReceiverProcess,
    models: Sequence[ModelRecord],
    rows: Sequence[MetricRow],
) -> dict[str, Any]:
    """Deliver every model's backlog at once; each model's rate over the time its lane took."""
    await _queue(db.pool, models, rows, receiver.url)
    finished: dict[int, float] = {}
    ids = {m.id for m in models}
    started = time.perf_counter()
    async with _delivering(db, settings):
        while len(finished) < len(models):
            await asyncio.sleep(0.02)
            now = time.perf_counter() - started
            for model_id, count in (await _delivered(db.pool)).items():
                if count >= len(rows) and model_id not in finished and model_id in ids:
                    finished[model_id] = now
    rates = [len(rows) / seconds for seconds in finished.values()]
    _, connections = await receiver.received()
    return {
        "slowest_per_s": round(min(rates), 1),
        "median_per_s": round(statistics.median(rates), 1),
        "total_per_s": round(len(rows) * len(models) / max(finished.values()), 1),
        "seconds": round(max(finished.values()), 2),
        "connections": connections,
    }


async def _outage(
    db: Database,
    settings: Settings,
    receiver: ReceiverProcess,
    models: Sequence[ModelRecord],
    rows: Sequence[MetricRow],
    outage_seconds: float,
    scale: float,
) -> dict[str, Any]:
    """Stop the receiver, keep queuing for `outage_seconds / scale` seconds, start it again; time the
    recovery."""
    outage = outage_seconds / scale
    _, connections_before = await receiver.received()
    await receiver.stop()
    bursts = [rows[i::OUTAGE_BURSTS] for i in range(OUTAGE_BURSTS)]
    async with _delivering(db, settings):
        for burst in bursts:
            await _queue(db.pool, models, burst, receiver.url)
            await asyncio.sleep(outage / OUTAGE_BURSTS)
        attempts_while_down = await _count(
            db.pool,
            "SELECT count(*) FROM coinfleet_alert_attempts WHERE model_id = ANY($1::int[])",
            [m.id for m in models],
        )
        await receiver.start()
        back = time.perf_counter()
        ids = {m.id for m in models}
        first: float | None = None
        while True:
            delivered = await _delivered(db.pool)
            if first is None and any(delivered.get(i, 0) for i in ids):
                first = time.perf_counter() - back
            dead = await _count(db.pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'dead'")
            if dead or all(delivered.get(i, 0) >= len(rows) for i in ids):
                break
            await asyncio.sleep(0.02)
        drained = time.perf_counter() - back
    return {
        "dead": dead,
        "connections_before": connections_before,
        "alerts": len(rows) * len(models),
        "attempts_while_down": attempts_while_down,
        "first_delivery_seconds": round(first or drained, 2),
        "first_delivery_seconds_equivalent": round((first or drained) * scale, 1),
        "drain_seconds": round(drained, 2),
        "down_seconds": round(outage, 2),
    }


async def _count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


async def _order(pool: asyncpg.Pool, keys: Sequence[str], strict: Sequence[int]) -> dict[str, bool]:
    """Whether each coin's alerts arrived in queue order, and every alert of the `strict` models (one
    request in flight); a repeated key counts where it first arrived."""
    async with pool.acquire() as conn:
        queued = await conn.fetch("SELECT model_id, mint, idempotency_key FROM coinfleet_alerts ORDER BY id")
    arrived = {key: n for n, key in enumerate(dict.fromkeys(keys))}
    per_model: dict[int, list[int]] = {}
    per_coin: dict[tuple[int, str], list[int]] = {}
    for row in queued:
        at = arrived.get(row["idempotency_key"], -1)
        per_model.setdefault(row["model_id"], []).append(at)
        per_coin.setdefault((row["model_id"], row["mint"]), []).append(at)
    return {
        "per_model": all(per_model[m] == sorted(per_model[m]) for m in strict if m in per_model),
        "per_coin": all(ats == sorted(ats) for ats in per_coin.values()),
    }


def render(result: dict[str, Any]) -> Table:
    """The verdicts and the figures behind them."""
    fleet, o = result["fleet"], result["outage"]
    table = Table(title=f"alerts — local receiver answering in {result['receiver_delay_ms']:g} ms")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        f"alerts/s, one busy model ({result['in_flight_per_model']} in flight)",
        f"{result['alerts_per_s_per_model']:,.1f}",
        "≥ 100",
    )
    table.add_row(
        f"alerts/s, one busy model ({SERIAL} in flight)",
        f"{result['alerts_per_s_per_model_serial']:,.1f}",
        "",
    )
    table.add_row(
        f"alerts/s, {result['models']} models at once: each (slowest) / all",
        f"{fleet['slowest_per_s']:,.1f} / {fleet['total_per_s']:,.1f}",
        "",
    )
    table.add_row("connections used before the outage", str(o["connections_before"]), "")
    table.add_row(
        f"dead after a {o['outage_seconds_equivalent'] / 60:g} min outage (time ÷ {o['scale']:g})",
        str(result["dead_after_outage"]),
        "0",
    )
    table.add_row("attempts while down", f"{o['attempts_while_down']} for {o['alerts']} alerts", "")
    table.add_row(
        "first delivery after the receiver is back (scaled)",
        f"{o['first_delivery_seconds']} s (≙ {o['first_delivery_seconds_equivalent']} s)",
        "",
    )
    table.add_row("backlog delivered after the receiver is back (not scaled)", f"{o['drain_seconds']} s", "")
    table.add_row("duplicates", str(result["duplicates"]), "0")
    table.add_row("order per model kept (with 1 in flight)", _yes(result["order_per_model_kept"]), "yes")
    table.add_row("order per coin kept (every run)", _yes(result["order_per_coin_kept"]), "yes")
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"
