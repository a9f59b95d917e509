"""Plain helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from coinfleet.db.database import drop_database, with_database
from coinfleet.db.migrate import available
from coinfleet.events.cursor import Event
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.lanes.rules import Tag
from coinfleet.lanes.store import NewPrediction
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.targets import TargetSpec

T_START = datetime(2026, 1, 1, tzinfo=UTC)


def market_rows(*, coins: int = 30, seconds: float = 900, seed: int = 1) -> list[MetricRow]:
    """A simulated market history: deterministic, quick to make."""
    config = SimulatorConfig(coins=coins, seed=seed, launch_window_seconds=seconds / 3)
    return MarketSimulator(config, T_START).history(seconds)


def coinfleet_json(*args: str, env: Mapping[str, str], timeout: float) -> tuple[list[str], Any]:
    """Run `python -m coinfleet ARGS --json`; assert it succeeded and return the lines it printed before
    its JSON, and the JSON object on its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "coinfleet", *args, "--json"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *before, last = done.stdout.strip().splitlines()
    return before, json.loads(last)


T_PREDICTED = datetime(2026, 3, 1, tzinfo=UTC)  #: metric times of `new_prediction`
#: a transaction id after every real one: made-up events and cursors use it (a cursor only moves forward)
LATE_TX = 10**12


def new_prediction(
    mint: str,
    seconds: float,
    probability: float,
    tag: Tag,
    *,
    phase: int | None = 2,
    volume: float = 4.0,
    seq: int = 1,
    ts: datetime | None = None,
) -> NewPrediction:
    """A prediction to store, on a made-up metric row `seconds` after T_PREDICTED (or at `ts`)."""
    ts = ts or T_PREDICTED + timedelta(seconds=seconds)
    metric = MetricRow(
        mint=mint, timestamp=ts, phase_id_at_time=phase, price_open=1.0, price_high=1.5, price_low=0.5,
        price_close=1.25, market_cap_close=30.0, volume_sol=volume, buy_volume_sol=3.0, sell_volume_sol=1.0,
        num_buys=3, num_sells=1, unique_wallets=4,
    )  # fmt: skip
    event = Event(tx=LATE_TX, seq=seq, mint=mint, ts=ts, inserted_at=ts)
    return NewPrediction(event=event, row=metric, probability=probability, tag=tag)


async def copy_template(server_dsn: str, template: str, prefix: str) -> tuple[str, str]:
    """A new database `prefix_<random>` copied from `template`: its name and DSN (drop it with
    `coinfleet.db.database.drop_database`)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return name, with_database(server_dsn, name)


@asynccontextmanager
async def migrated_before(server_dsn: str, version: int) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new database migrated up to, not including, migration `version` (recorded as
    `migrate` records them, so `migrate(conn)` applies the rest); the database is dropped afterwards."""
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        conn = await asyncpg.connect(with_database(server_dsn, name))
        try:
            await conn.execute(
                "CREATE TABLE coinfleet_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in (m for m in available() if m.version < version):
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO coinfleet_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            yield conn
        finally:
            await conn.close()
    finally:
        await drop_database(server_dsn, name)


async def activate(pool: asyncpg.Pool, bundle: ModelBundle, name: str, **settings: object) -> ModelRecord:
    """`bundle` imported as model `name` with these settings, active."""
    async with pool.acquire() as conn:
        return await import_bundle(
            conn, replace(bundle, name=name), settings=ModelSettings.model_validate(settings), activate=True
        )


async def until(condition: Callable[[], bool], timeout: float = 90) -> None:
    """Wait until `condition()` holds; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    """The one number a `SELECT count(*) ...` (or sum) returns."""
    async with pool.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


class Service(Protocol):
    """What runs until stopped: lanes (`Supervisor`), delivery (`Deliverer`)."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


@asynccontextmanager
async def running(service: S) -> AsyncIterator[S]:
    """Run `service` in a task for the block, then stop it and wait until it has."""
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        service.stop()
        await task


async def start_serve(dsn: str, log: Path, **settings: str) -> asyncio.subprocess.Process:
    """`python -m coinfleet serve` on `dsn` with these settings (`poll_interval_seconds="0.2"` sets
    COINFLEET_POLL_INTERVAL_SECONDS), its output appended to `log`, its HTTP side on any free port."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "COINFLEET_API_PORT": "0",  # nothing else on the machine may hold ours
        **{f"COINFLEET_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coinfleet", "serve", env=env, stdout=sink, stderr=sink
        )


@dataclass(frozen=True, kw_only=True)
class Received:
    """One POST a `Receiver` got."""

    path: str
    headers: dict[str, str]  #: lower-case names
    body: bytes
    client_port: int = 0  #: the sender's port: one per connection

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]


class Receiver:
    """A real webhook receiver on loopback, in a thread, recording every POST and answering `status`
    with `body` (subclasses answer per path through `answer`)."""

    def __init__(self, port: int = 0, *, status: int = 200, body: bytes = b'{"accepted": true}') -> None:
        self.received: list[Received] = []
        self.status = status
        self.body = body
        self.location: str | None = None
        self.hold = threading.Event()  #: while clear, requests wait before answering
        self.hold.set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                got = Received(path=self.path, headers=headers, body=body, client_port=self.client_address[1])
                with receiver._lock:
                    receiver.received.append(got)
                receiver.hold.wait(30)
                status, location = receiver.answer(self.path)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def answer(self, path: str) -> tuple[int, str | None]:
        """The status and Location to answer a request for `path` with."""
        return self.status, self.location

    def at(self, path: str) -> str:
        """The URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def url(self) -> str:
        return self.at("/webhook/n8n")

    def keys(self) -> list[str]:
        with self._lock:
            return [r.key for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


async def insert_many_predictions(
    conn: asyncpg.Connection, model_id: int, target: TargetSpec, *, start: datetime
) -> None:
    """20,000 negative predictions of one model over 500 coins, one a second from `start`: enough rows that
    only an index keeps a read cheap (the EXPLAIN tests)."""
    await conn.execute(
        "INSERT INTO coinfleet_predictions (model_id, model_version, mint, metric_ts, probability,"
        " prediction, tag, alert_threshold, target, evaluate_at, event_tx, event_seq)"
        " SELECT $1, 1, 'c' || (i % 500), $2::timestamptz + i * interval '1 s', 0.2, 0, 'negative',"
        " 0.7, $3::jsonb, $2::timestamptz + i * interval '1 s', '1'::xid8, i"
        " FROM generate_series(1, 20000) AS i",
        model_id,
        start,
        json.dumps(target.to_dict()),
    )
