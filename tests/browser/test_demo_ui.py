"""The UI's acceptance: `coinfleet demo` prints the UI URL, and every page works on the demo's data, live."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

pytestmark = pytest.mark.slow

UI_LINE = re.compile(r"^UI: (http://\S+/ui/)\s*$")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COINFLEET_DATABASE_URL")}
    env.update({"COINFLEET_HOME": str(home), "COINFLEET_LOG_LEVEL": "warning", "COINFLEET_API_PORT": "0"})
    return env


@asynccontextmanager
async def demo(home: Path) -> AsyncIterator[str]:
    """`coinfleet demo` on a fresh home and the embedded database, running until the test is done;
    the UI URL it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coinfleet", "demo", "--duration", "900", "--json",
        env=_env(home), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    printed: list[str] = []
    drain: asyncio.Task[bytes] | None = None
    try:
        async with asyncio.timeout(400):  # training the demo's models on a fresh home comes first
            while (line := (await process.stderr.readline()).decode()) and not UI_LINE.match(line):
                printed.append(line)
        match = UI_LINE.match(line)
        assert match, f"the demo printed no UI URL: {''.join(printed)[-2000:]}"
        drain = asyncio.create_task(process.stderr.read())  # keep its pipe from filling
        yield match[1]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(120):
                await process.wait()
        stop = [sys.executable, "-m", "coinfleet", "db", "stop"]
        await asyncio.to_thread(subprocess.run, stop, env=_env(home), timeout=120, check=False)
        if drain is not None:
            drain.cancel()


async def _model_names(page: Page) -> list[str]:
    cards = page.locator("[data-testid^='card-']")
    await expect(cards).to_have_count(3)
    ids = [await card.get_attribute("data-testid") or "" for card in await cards.all()]
    return [card_id.removeprefix("card-") for card_id in ids]


@pytest.mark.timeout(900)
async def test_every_page_works_on_the_demo(page: Page, tmp_path: Path) -> None:
    async with demo(tmp_path / "home") as url:
        try:
            await visit_every_page(page, url)
        finally:
            await page.goto("about:blank")  # leave before the demo stops, or the page logs its reconnects


async def visit_every_page(page: Page, url: str) -> None:
    """The fleet, live; a model with its log, a filter, statistics, settings and training; one of its
    coins; the alerts; the import page."""
    await page.goto(url)
    names = await _model_names(page)
    stored = page.get_by_test_id(f"card-{names[0]}").get_by_test_id("stored")
    await expect(stored).not_to_have_text(re.compile(r"stored predictions 0 "))
    shown = await stored.inner_text()
    await expect(stored).not_to_have_text(shown)  # live: the demo scores on, the card follows
    for name in names:
        await expect(page.get_by_test_id(f"card-{name}").get_by_test_id("status")).to_have_text("active")

    await page.get_by_role("link", name=names[0], exact=True).click()
    await expect(page.get_by_test_id("model-status")).to_have_text("active")
    log = page.get_by_test_id("prediction-table").locator("tbody tr")
    await expect(log.first).to_be_visible()
    await page.get_by_test_id("filter-state").click()
    await page.get_by_role("option", name="waiting").click()
    await page.get_by_test_id("filter-apply").click()
    await expect(log.first).to_contain_text("waiting")
    await page.get_by_role("tab", name="Statistics").click()
    await expect(page.get_by_test_id("stat-predictions")).not_to_have_text("0")
    await expect(page.get_by_text("histogram drawn from")).to_be_visible()
    await page.get_by_role("tab", name="Settings").click()
    await expect(page.get_by_test_id("setting-alert_threshold")).not_to_have_value("")
    await page.get_by_role("tab", name="Training").click()
    await expect(page.get_by_text("Features:")).to_be_visible()

    await page.get_by_role("tab", name="Predictions").click()
    await log.first.get_by_role("link").click()
    await expect(page.get_by_test_id("page-title")).to_contain_text("Coin ")
    await expect(page.get_by_test_id("coin-row-count")).not_to_have_text("0 metric rows")
    await expect(page.get_by_role("link", name=f"{names[0]}:")).to_be_visible()
    await expect(page.get_by_test_id("metric-rows").locator("tbody tr").first).to_be_visible()

    await page.get_by_role("link", name="Alerts", exact=True).click()
    await expect(page.get_by_test_id("page-title")).to_have_text("Alerts")
    await expect(page.get_by_text(re.compile(r"page 1 · \d+ alerts"))).to_be_visible()
    await page.get_by_role("link", name="Import", exact=True).click()
    await expect(page.get_by_test_id("page-title")).to_have_text("Import a model")
