"""Shared fixtures: one PostgreSQL per test session, a migrated template, a fresh database per test.

The server is the embedded one (started in a temp folder) unless COINFLEET_TEST_DATABASE_URL names
another server, e.g. postgresql://postgres@127.0.0.1:5432/test. Tests that read events below the event
horizon take `own_db_dsn` (a cluster of the session's own) instead: see `own_server_dsn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import uvloop
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from coinfleet.constants import DEFAULT_ALERT_THRESHOLD
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, drop_database, with_database
from coinfleet.db.migrate import migrate
from coinfleet.models.bundle import ModelBundle, read_bundle, write_bundle
from coinfleet.models.train import train_model
from coinfleet.targets import TargetSpec
from support import Receiver, copy_template, market_rows

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RECORDED_FILE = SHARED_DATA / "pumpfun_tracks_2025-06-06.csv"


#: the event loop the CLI runs its services on, and so every test and async fixture
LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
#: pytest-asyncio's session fixture holding the loop factory its runners use (its own name, not ours)
LOOP_FACTORY_FIXTURE = "_asyncio_loop_factory"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on the event loop the CLI runs its services on."""
    return {"uvloop": LOOP_FACTORY}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A plain (sync) test that uses an async fixture gets the loop factory the async tests get.

    pytest-asyncio parametrizes only async tests with the factory, so a sync test (the acceptance tests:
    `db_dsn` is async) asked for its session fixture without one: the fixture's value changed, and
    pytest tore down the session's async fixtures with it at every switch between the two kinds — after
    an async test a sync test then failed with "template_name … torn down", and the fixtures rebuilt
    for it ran on a plain asyncio loop (pytest-asyncio issue #1501)."""
    if LOOP_FACTORY_FIXTURE in metafunc.fixturenames or not _uses_async_fixture(metafunc):
        return
    metafunc.fixturenames.append(LOOP_FACTORY_FIXTURE)
    metafunc.parametrize(
        LOOP_FACTORY_FIXTURE, [LOOP_FACTORY], ids=[pytest.HIDDEN_PARAM], indirect=True, scope="session"
    )


def _uses_async_fixture(metafunc: pytest.Metafunc) -> bool:
    definitions = metafunc._arg2fixturedefs  # the test's fixture closure, as pytest resolved it
    return any(
        inspect.iscoroutinefunction(defs[-1].func) or inspect.isasyncgenfunction(defs[-1].func)
        for name in metafunc.fixturenames
        if (defs := definitions.get(name))
    )


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN of a server the tests may create databases on."""
    external = os.environ.get("COINFLEET_TEST_DATABASE_URL")
    if external:
        yield external
        return
    pgdata = tmp_path_factory.mktemp("pg") / "data"
    dsn, _ = embedded.start(pgdata)
    try:
        yield dsn
    finally:
        embedded.stop(pgdata)


async def _admin(server_dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(with_database(server_dsn, "postgres"))


@pytest.fixture(scope="session")
async def template_name(server_dsn: str) -> AsyncIterator[str]:
    """A database with every migration applied, copied for each test."""
    async with _template(server_dsn) as name:
        yield name


@contextlib.asynccontextmanager
async def _template(server_dsn: str) -> AsyncIterator[str]:
    name = f"cf_template_{uuid.uuid4().hex[:10]}"
    admin = await _admin(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server_dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def db_dsn(server_dsn: str, template_name: str) -> AsyncIterator[str]:
    """A fresh migrated database for one test, dropped afterwards."""
    name, dsn = await copy_template(server_dsn, template_name, "cf_test")
    yield dsn
    await drop_database(server_dsn, name)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An embedded PostgreSQL of one test's own, which it may stop, crash or restart: (data directory,
    server DSN); stopped afterwards."""
    pgdata = tmp_path / "pg" / "data"
    dsn, _ = embedded.start(pgdata)
    try:
        yield pgdata, dsn
    finally:
        embedded.stop(pgdata)


@pytest.fixture(scope="session")
def own_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded PostgreSQL no other process writes to, started on first use.

    Events are read only below the event horizon, the oldest transaction still open anywhere in the
    cluster: on a shared server, another process's long transaction (in any database) holds back every
    event a test just inserted, for as long as it likes. No bounded wait rides that out.
    """
    pgdata = tmp_path_factory.mktemp("own-pg") / "data"
    dsn, _ = embedded.start(pgdata)
    try:
        yield dsn
    finally:
        embedded.stop(pgdata)


@pytest.fixture(scope="session")
async def own_template_name(own_server_dsn: str) -> AsyncIterator[str]:
    """`template_name` on the session's own server."""
    async with _template(own_server_dsn) as name:
        yield name


@pytest.fixture
async def own_db_dsn(own_server_dsn: str, own_template_name: str) -> AsyncIterator[str]:
    """`db_dsn` on the session's own server: for tests whose events must not wait behind strangers'
    transactions (a module overrides `db_dsn` with it, and `pool` follows)."""
    name, dsn = await copy_template(own_server_dsn, own_template_name, "cf_test")
    yield dsn
    await drop_database(own_server_dsn, name)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the test's database."""
    pool = await create_pool(db_dsn, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def recorded_file() -> Path:
    """The real recorded pump.fun file in ../shared/data (skips when absent)."""
    if not RECORDED_FILE.exists():
        pytest.skip(f"recorded data not found at {RECORDED_FILE}")
    return RECORDED_FILE


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A real XGBoost model trained on a simulated market, as a bundle on disk."""
    trained = train_model(
        market_rows(coins=60, seconds=1800, seed=11),
        algorithm="xgboost",
        target=TargetSpec(kind="change", direction="down", change_percent=1, horizon_seconds=60),
    )
    # the fixed threshold the tests that count alerts were written against (not the validation one)
    bundle = trained.to_bundle("xgb-test", alert_threshold=DEFAULT_ALERT_THRESHOLD)
    return read_bundle(write_bundle(tmp_path_factory.mktemp("models"), bundle))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Native thread pools (OpenMP, BLAS) limited to one thread for a test that fits or runs models:
    OpenMP spinning on a busy machine made fits 40x slower (`pytest.mark.usefixtures("one_thread")`)."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback answering 200, closed after the test."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
