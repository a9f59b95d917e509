"""Browser tests: a real server on a loopback port, real scored data in PostgreSQL, real Chromium.

With CI=true a missing Chromium fails the run; elsewhere the browser tests are skipped without it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from coinfleet.alerts.delivery import Deliverer
from coinfleet.config import Settings
from coinfleet.db.database import create_pool, drop_database
from coinfleet.evaluation.rounds import RoundConfig, drain
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import Receiver, copy_template, market_rows, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
# the machine is shared: what a page shows by itself within 20 s counts (no test asserts a duration)
expect.set_options(timeout=20_000)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LANE_SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=500, runner="inline")
DELIVERY_SETTINGS = Settings(webhook_allow_private=True, webhook_timeout_seconds=2, poll_interval_seconds=0.2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium: fail under CI, skip elsewhere."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI=true but {CHROMIUM} is missing: install the Debian package chromium")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (apt-get install chromium)")
    for item in items:
        if "browser" in item.nodeid:
            item.add_marker(skip)


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """The scored fleet the UI shows: database, server URL, and what is in it."""

    dsn: str
    url: str
    active: tuple[str, ...]
    inactive: str
    quarantined: str
    coin: str  #: a coin every active model scored


async def _scored_database(server_dsn: str, template_name: str, bundle: ModelBundle) -> tuple[str, str]:
    _, dsn = await copy_template(server_dsn, template_name, "cf_ui")
    pool = await create_pool(dsn, max_size=6)
    try:
        coin = await _score(pool, dsn, bundle)
    finally:
        await pool.close()
    return dsn, coin


async def _score(pool: asyncpg.Pool, dsn: str, bundle: ModelBundle) -> str:
    """Import four models, feed a simulated market, let the lanes score it, evaluate what is due, deliver
    alpha's alerts to a real receiver and beta's to one that refuses them for good (410: dead at once)."""
    receiver, refuser = Receiver(), Receiver(status=410, body=b'{"error": "this workflow is gone"}')
    webhooks = {"alpha": receiver.url, "beta": refuser.url}
    async with pool.acquire() as conn:
        for name, threshold in (("alpha", 0.6), ("beta", 0.7)):
            settings = ModelSettings(
                alert_threshold=threshold, min_scan_interval_seconds=0, webhook_url=webhooks[name],
                send_modes=["alerts_only"],
            )  # fmt: skip
            await import_bundle(conn, replace(bundle, name=name), settings=settings, activate=True)
        for name in ("gamma", "delta"):
            await import_bundle(conn, replace(bundle, name=name), settings=ModelSettings())
    rows = market_rows(coins=12, seconds=600, seed=5)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    async with running(Supervisor(pool=pool, dsn=dsn, settings=LANE_SETTINGS)) as supervisor:
        async with asyncio.timeout(90):
            while len(supervisor.lanes) < 2 or any(
                lane.stats.events < len(rows) for lane in supervisor.lanes
            ):
                await asyncio.sleep(0.1)
    await drain(pool, RoundConfig(grace_seconds=30, base_quota=100_000))
    await _deliver(pool, dsn)
    receiver.close()
    refuser.close()
    async with pool.acquire() as conn:
        await registry.set_status(conn, "delta", "quarantined", "runner crashed 5 times in 20 batches")
        # the coin whose price moved most among those with alerts: the liveliest chart
        liveliest: str = await conn.fetchval(
            "SELECT m.mint FROM coin_metrics m"
            " WHERE m.mint IN (SELECT mint FROM coinfleet_predictions WHERE tag = 'alert')"
            " GROUP BY m.mint ORDER BY count(DISTINCT m.price_close) DESC, m.mint LIMIT 1"
        )
    return liveliest


async def _deliver(pool: asyncpg.Pool, dsn: str) -> None:
    async with running(Deliverer(pool=pool, dsn=dsn, settings=DELIVERY_SETTINGS)):
        async with asyncio.timeout(90):
            while await pool.fetchval("SELECT count(*) FROM coinfleet_alerts WHERE state = 'pending'"):
                await asyncio.sleep(0.2)


#: serve_ui.py sets the prediction log's scan bound from this variable (a test's small table)
SCAN_LIMIT_ENV = "COINFLEET_TEST_LOG_SCAN_LIMIT"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def ui_server(dsn: str, *token: str, scan_limit: int | None = None) -> AsyncIterator[str]:
    """The UI served on `dsn` by a child process on a free loopback port; its base URL. With
    `scan_limit`, a prediction log page examines that many predictions (200,000 in production)."""
    port = _free_port()
    home = tempfile.mkdtemp(prefix="coinfleet-ui-home-")  # the server keeps browser sessions there
    limit = {} if scan_limit is None else {SCAN_LIMIT_ENV: str(scan_limit)}
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("serve_ui.py")), dsn, str(port), *token,
        env={**os.environ, "COINFLEET_HOME": home, **limit},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_up(url, server)
        yield url
    finally:
        server.terminate()
        async with asyncio.timeout(20):
            await server.wait()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
async def fleet(server_dsn: str, template_name: str, small_bundle: ModelBundle) -> AsyncIterator[Fleet]:
    """A scored database and a UI server on it, for one test module."""
    dsn, coin = await _scored_database(server_dsn, template_name, small_bundle)
    try:
        async with ui_server(dsn) as url:
            yield Fleet(
                dsn=dsn, url=url, active=("alpha", "beta"), inactive="gamma", quarantined="delta", coin=coin
            )
    finally:
        await drop_database(server_dsn, dsn.rsplit("/", 1)[1])


async def _wait_until_up(url: str, server: asyncio.subprocess.Process, *, path: str = "/ping") -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(60):
        while True:
            assert server.returncode is None, "the UI server exited at start"
            try:
                if (await client.get(f"{url}{path}")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page."""

    errors: list[str]

    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page; the test fails if it logged a console error or threw."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    console = Console(errors=[])
    page.on("console", console.record)
    page.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    try:
        yield page
    finally:
        await context.close()
    assert console.errors == [], f"the page logged errors: {console.errors}"


@pytest.fixture
def screenshots() -> Path:
    """Where the screenshots of the pages go (committed, shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
