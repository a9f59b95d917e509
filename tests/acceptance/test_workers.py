"""Many coinfleet processes on one database: a second `serve` on one embedded server cooperates, and
workers killed, paused past their lease and cut off by a PostgreSQL restart lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from coinfleet.constants import DEFAULT_DATABASE
from coinfleet.db import embedded
from coinfleet.feed.writer import insert_metrics
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import coinfleet_json, market_rows

pytestmark = pytest.mark.slow


@pytest.mark.timeout(400)
def test_chaos_loses_and_duplicates_no_prediction_and_no_alert(tmp_path: Path) -> None:
    env = {**os.environ, "COINFLEET_HOME": str(tmp_path), "COINFLEET_LOG_LEVEL": "warning"}
    args = ("bench", "chaos", "--rows", "3000", "--kills", "3", "--seconds", "15")
    _, result = coinfleet_json(*args, env=env, timeout=390)
    assert (result["kills"], result["pauses"], result["postgres_restarts"]) == (3, 1, 1)
    assert result["expected_predictions"] > 0 and result["expected_alerts"] > 0
    assert (result["lost"], result["duplicated"], result["unexpected"]) == (0, 0, 0)
    assert (result["alerts_lost"], result["alerts_unexpected"]) == (0, 0)
    assert result["lease_moves"] >= 3  # every kill moved the killed worker's models
    # the paused worker, when it woke, found its leases taken: at its heartbeat (lease_lost) or, when a
    # lane's commit came first, by that commit being refused (lane_fenced; the lane then lets the lease go)
    assert result["leases_lost"] + result["fenced_batches"] > 0
    window = result["answer_to_commit_ms"]  # receiver read → answer stored, overall and while wrecking
    assert window["alerts"] >= result["alerts"] and "during_havoc" in window


def serve(home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COINFLEET_DATABASE_URL")}
    env.update(
        COINFLEET_HOME=str(home), COINFLEET_RUNNER="inline", COINFLEET_LEASE_SECONDS="1.5",
        COINFLEET_POLL_INTERVAL_SECONDS="0.3", COINFLEET_LOG_LEVEL="warning",
        COINFLEET_API_PORT="0",  # two serves on one machine: each its own free port
    )  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "coinfleet", "serve"], env=env)


async def database(pgdata: Path) -> asyncpg.Connection:
    """The embedded server's coinfleet database, once a serve has migrated it."""
    async with asyncio.timeout(120):
        while True:
            state = embedded.status(pgdata)
            if state.running and state.socket_dir is not None:
                dsn = embedded.socket_dsn(state.socket_dir, None, DEFAULT_DATABASE)
                try:
                    conn = await asyncpg.connect(dsn)
                    if await conn.fetchval("SELECT to_regclass('coinfleet_leases') IS NOT NULL"):
                        return conn
                    await conn.close()
                except (OSError, asyncpg.PostgresError):
                    pass
            await asyncio.sleep(0.2)


async def until_scored(conn: asyncpg.Connection, per_model: int, models: int) -> None:
    query = "SELECT count(*) FROM coinfleet_predictions GROUP BY model_id"
    async with asyncio.timeout(120):
        while [r[0] for r in await conn.fetch(query)] != [per_model] * models:
            await asyncio.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


@pytest.mark.timeout(300)
async def test_a_second_serve_on_one_embedded_database_cooperates_and_keeps_it_up(
    tmp_path: Path, small_bundle: ModelBundle
) -> None:
    home = tmp_path / "home"
    pgdata = home / "pgdata"
    first = serve(home)
    second = None
    try:
        conn = await database(pgdata)
        second = serve(home)
        settings = ModelSettings(min_scan_interval_seconds=0)
        for name in ("a", "b"):
            await import_bundle(conn, replace(small_bundle, name=name), settings=settings, activate=True)
        rows = sorted(market_rows(coins=10, seconds=300), key=lambda r: r.timestamp)
        half = len(rows) // 2
        async with asyncio.timeout(60):  # both serve, one model each
            while await conn.fetchval("SELECT count(DISTINCT owner) FROM coinfleet_leases") != 2:
                await asyncio.sleep(0.2)
        await insert_metrics(conn, rows[:half])
        await until_scored(conn, half, 2)  # each event once per model, not once per serve
        await conn.close()
        assert stop(first) == 0  # the serve that started the server leaves first
        assert embedded.status(pgdata).running  # and the server stays up for the other
        conn = await database(pgdata)
        await insert_metrics(conn, rows[half:])
        await until_scored(conn, len(rows), 2)  # the second took over the first's model
        await conn.close()
        assert stop(second) == 0
        assert not embedded.status(pgdata).running  # the last one out stops it
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if embedded.status(pgdata).running:
            embedded.stop(pgdata)


@pytest.mark.timeout(180)
async def test_a_worker_runs_the_drift_watcher(
    db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await import_bundle(conn, replace(small_bundle, name="watched"), activate=True)
    finally:
        await conn.close()
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "COINFLEET_HOME": str(tmp_path),
        "COINFLEET_RUNNER": "inline",
    }
    env.update(
        COINFLEET_LOG_LEVEL="info", COINFLEET_LOG_FORMAT="json", COINFLEET_DRIFT_REFRESH_SECONDS="3600"
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coinfleet", "worker", env=env, stdout=sink, stderr=sink
        )
    try:
        async with asyncio.timeout(150):
            while '"model_drift"' not in log.read_text(errors="replace"):
                assert worker.returncode is None, log.read_text(errors="replace")[-3000:]
                await asyncio.sleep(0.2)
        assert '"model": "watched"' in log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
