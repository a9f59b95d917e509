"""`coinfleet serve` and `coinfleet replay` ride out a real PostgreSQL stop and a real crash.

The shared test server must never be stopped: these tests start an embedded PostgreSQL of their own
and stop it (`pg_ctl stop`) and crash it (`pg_ctl stop -m immediate`) mid-replay.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest

from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, fresh_database, open_database, with_database
from coinfleet.db.outage import DOWN
from coinfleet.errors import DatabaseError
from coinfleet.feed import live
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import count, market_rows, start_serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
#: longer than serve's poll interval below, so every loop meets the outage
DOWN_SECONDS = 2.5
#: the replay's pace: its 900 s of feed would last 180 s, far longer than serve's start and both outages
#: take on a busy machine; the test stops it once it has written rows after the second outage
REPLAY_SPEED = 5


async def until_logged(proc: asyncio.subprocess.Process, log: Path, pattern: str) -> re.Match[str]:
    """The first match of `pattern` in `log`, waited for while `proc` runs (it must not exit meanwhile)."""
    async with asyncio.timeout(120):
        while not (found := re.search(pattern, text := await asyncio.to_thread(log.read_text))):
            assert proc.returncode is None, text
            await asyncio.sleep(0.1)
    return found


async def start(dsn: str, log: Path) -> asyncio.subprocess.Process:
    return await start_serve(dsn, log, runner="inline", poll_interval_seconds="0.3", log_level="info")


async def until_more_predictions(pool: asyncpg.Pool, than: int) -> int:
    async with asyncio.timeout(120):
        while (n := await count(pool, "SELECT count(*) FROM coinfleet_predictions")) <= than:
            await asyncio.sleep(0.05)
    return n


async def until_listening(pool: asyncpg.Pool) -> None:
    """Serve's LISTEN connection is back (it reconnects with a backoff of its own, so the last
    predictions may land first)."""
    async with asyncio.timeout(60):
        while not await count(pool, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"):
            await asyncio.sleep(0.1)


async def outage(pgdata: Path, *, crash: bool) -> None:
    """Stop (or crash) the server, keep it down past every poll interval, start it again."""
    await asyncio.to_thread(embedded.crash if crash else embedded.stop, pgdata)
    await asyncio.sleep(DOWN_SECONDS)
    await asyncio.to_thread(embedded.start, pgdata)


async def test_serve_and_replay_ride_out_a_stop_and_a_crash(
    own_server: tuple[Path, str], small_bundle: ModelBundle, tmp_path: Path
) -> None:
    pgdata, server_dsn = own_server
    dsn = await fresh_database(server_dsn, "faults")
    admin = await asyncpg.connect(dsn)
    try:  # lanes commit without waiting for the flush: a crash then loses their last seconds of commits
        await admin.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        await admin.execute("SELECT pg_reload_conf()")
        model = replace(small_bundle, name="steady")
        settings = ModelSettings(min_scan_interval_seconds=0)
        await import_bundle(admin, model, settings=settings, activate=True)
    finally:
        await admin.close()
    rows = market_rows(coins=25, seconds=900, seed=4)
    log = tmp_path / "serve.log"
    serve = await start(dsn, log)
    pool = await create_pool(dsn, max_size=4)
    written = [0]  # rows the replay has written so far
    stop = asyncio.Event()
    try:
        replay = asyncio.create_task(
            live.replay(pool, rows, speed=REPLAY_SPEED, on_rows=written.append, stop=stop)
        )
        seen = await until_more_predictions(pool, 0)
        await outage(pgdata, crash=True)
        await until_more_predictions(pool, seen)
        await outage(pgdata, crash=False)
        before_back = sum(written)
        async with asyncio.timeout(120):
            while sum(written) == before_back:  # the replay writes again after both outages
                if replay.done():
                    replay.result()  # a replay that died shows why
                assert not replay.done(), "both outages must land mid-replay"
                await asyncio.sleep(0.05)
        stop.set()
        async with asyncio.timeout(120):
            replayed = await replay
            while await count(pool, "SELECT count(*) FROM coinfleet_predictions") < replayed:
                assert serve.returncode is None, log.read_text()
                await asyncio.sleep(0.1)
            await until_listening(pool)  # serve listens again after the outages
        assert serve.returncode is None, "serve must ride out both outages"
        stored = await count(pool, "SELECT count(*) FROM coin_metrics")
        distinct = await count(pool, "SELECT count(DISTINCT (mint, metric_ts)) FROM coinfleet_predictions")
        counted = await count(pool, "SELECT sum(stored_predictions) FROM coinfleet_cursors")
    finally:
        serve.send_signal(signal.SIGTERM)
        exit_code = await serve.wait()
        await pool.close()
    assert replayed == sum(written) > before_back
    assert stored == replayed, "the replay resumed without writing a row twice"
    assert distinct == replayed, "every event scored once"
    assert counted == replayed, "no batch stored twice"
    text = log.read_text()
    assert exit_code == 0, text
    assert "database_unreachable" in text
    assert "database_back" in text
    assert "Traceback" not in text


async def migrations_applied(settings: Settings) -> int:
    """Open the database as `coinfleet worker` does (waiting for it) and count its migrations."""
    async with open_database(settings, wait=True) as db, db.pool.acquire() as conn:
        applied: int = await conn.fetchval("SELECT count(*) FROM coinfleet_migrations")
    return applied


async def test_a_worker_started_while_the_database_is_down_comes_up_when_it_is_back(
    own_server: tuple[Path, str],
) -> None:
    pgdata, server_dsn = own_server
    settings = Settings(database_url=await fresh_database(server_dsn, "late"))
    await asyncio.to_thread(embedded.stop, pgdata)
    with pytest.raises(DatabaseError):  # a command fails at once
        async with open_database(settings):
            pass
    opening = asyncio.create_task(migrations_applied(settings))
    try:
        async with asyncio.timeout(60):
            while "start" not in DOWN:  # it said once that the database is away, and waits
                assert not opening.done(), opening.exception()
                await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(embedded.start, pgdata)
    async with asyncio.timeout(120):
        assert await opening > 0
    assert "start" not in DOWN


async def test_serve_started_while_the_database_is_down_scores_once_it_is_back(
    own_server: tuple[Path, str], small_bundle: ModelBundle, tmp_path: Path
) -> None:
    pgdata, server_dsn = own_server
    dsn = await fresh_database(server_dsn, "late_serve")
    admin = await asyncpg.connect(dsn)
    try:
        settings = ModelSettings(min_scan_interval_seconds=0)
        await import_bundle(admin, replace(small_bundle, name="late"), settings=settings, activate=True)
    finally:
        await admin.close()
    await asyncio.to_thread(embedded.stop, pgdata)
    log = tmp_path / "serve.log"
    serve = await start(dsn, log)
    try:
        try:
            await until_logged(serve, log, "database_unreachable")  # it says the database is away, and waits
        finally:
            await asyncio.to_thread(embedded.start, pgdata)
        pool = await create_pool(dsn, max_size=2)
        try:
            replayed = await live.replay(pool, market_rows(coins=5, seconds=120, seed=7), speed=None)
            async with asyncio.timeout(120):
                while await count(pool, "SELECT count(*) FROM coinfleet_predictions") < replayed:
                    assert serve.returncode is None, log.read_text()
                    await asyncio.sleep(0.1)
        finally:
            await pool.close()
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        exit_code = await serve.wait()
    text = log.read_text()
    assert exit_code == 0, text
    assert "database_back" in text
    assert "Traceback" not in text


async def test_api_started_while_the_database_is_down_listens_once_it_is_back(
    own_server: tuple[Path, str], tmp_path: Path
) -> None:
    pgdata, server_dsn = own_server
    dsn = await fresh_database(server_dsn, "late_api")
    await asyncio.to_thread(embedded.stop, pgdata)
    log = tmp_path / "api.log"
    env = {**os.environ, "DATABASE_URL": dsn, "COINFLEET_HOME": str(tmp_path / "home"),
           "COINFLEET_API_PORT": "0", "COINFLEET_LOG_LEVEL": "info"}  # fmt: skip
    with log.open("ab") as sink:
        api = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coinfleet", "api", env=env, stdout=sink, stderr=sink
        )
    try:
        try:
            await until_logged(api, log, "database_unreachable")  # it says the database is away, and waits
        finally:
            await asyncio.to_thread(embedded.start, pgdata)
        listening = await until_logged(api, log, r"API docs: (http://\S+)/api/docs")
        async with httpx.AsyncClient(timeout=10) as client:
            ready = await client.get(f"{listening[1]}/ready")
        assert ready.status_code == 200, ready.text
    finally:
        if api.returncode is None:
            api.send_signal(signal.SIGINT)
        exit_code = await api.wait()
    text = log.read_text()
    assert exit_code == 0, text
    assert "database_back" in text


@pytest.mark.parametrize("command", ["serve", "api"])
async def test_a_wrong_database_name_stops_serve_and_api_at_once(server_dsn: str, command: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": with_database(server_dsn, "no_such_coinfleet_db"),
        "COINFLEET_API_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coinfleet", command, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):  # it does not wait: the server refuses, it is not away
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode()
    assert process.returncode == 1, text
    assert "no_such_coinfleet_db" in text and "does not exist" in text, text
    assert "database_unreachable" not in text
