"""The web UI at scale, measured in headless Chromium: MODELS models scoring a live feed, each with
HISTORY stored predictions, the UI served as `coinfleet serve` serves it (an HTTP child process).

    DATABASE_URL=postgresql://… COINFLEET_HOME=… .venv/bin/python scripts/bench_ui.py \
        [--models 20] [--history 1000000] [--rate 100] [--seconds 60]

A throwaway database is made on DATABASE_URL's server (or the embedded one) and dropped afterwards. The
history lies in the 17 h before the feed (inside the overview's 24 h statistics window, so the overview
aggregates all of it), 1,000 coins a minute, unevaluated. Prints one JSON object: how long each page
took to show its data (the overview with every card filled, a model's first log page, a filter that
matches nothing (ATH >= 1,000,000 %), the statistics tab over all time, a coin, the alerts), how often
an open overview's numbers changed while the models scored, the lanes' lag at the end, and how busy
the machine was. Needs the dev dependency playwright and /usr/bin/chromium. No figure is a goal: on a
shared machine they are floors of what a quiet one does.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from playwright.async_api import Browser, Page, async_playwright, expect

from coinfleet.api.process import http_child_until
from coinfleet.api.server import Listening
from coinfleet.api.serving import HttpOptions
from coinfleet.bench.harness import add_models, bench_bundle, bench_database, market, wait_for_lanes
from coinfleet.bench.ingester import Ingester
from coinfleet.bench.machine import MachineWatch
from coinfleet.config import Settings
from coinfleet.db.database import Database
from coinfleet.db.sql import query
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.logs import configure_logging
from coinfleet.service import models as model_reads
from coinfleet.service import stats as stat_reads
from coinfleet.ui import data, mount

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TOKEN = "bench-ui-token"
LOADS = 3  #: page loads per page measured
expect.set_options(timeout=900_000)

#: every text change of the first card's lines, stamped in the browser
WATCH_CARD = """(name) => {
  window.__changes = [];
  const card = document.querySelector(`[data-testid="card-${name}"]`);
  new MutationObserver(() => window.__changes.push(performance.now()))
    .observe(card, {subtree: true, characterData: true, childList: true});
}"""


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await action()
    return round((time.perf_counter() - start) * 1000, 1)


async def _overview(page: Page, url: str, names: list[str]) -> None:
    await page.goto(f"{url}/ui/")
    for name in names:
        await expect(page.get_by_test_id(f"card-{name}").get_by_test_id("stored")).to_contain_text("stored")


async def _model_log(page: Page, url: str, name: str) -> None:
    await page.goto(f"{url}/ui/models/{name}")
    await expect(page.get_by_test_id("prediction-table").locator("tbody tr")).to_have_count(50)


async def _filter_matching_nothing(page: Page) -> None:
    await page.get_by_test_id("filter-ath_min").fill("1000000")
    await page.get_by_test_id("filter-apply").click()
    await expect(page.get_by_text("page 1 · 0 predictions")).to_be_visible(timeout=300_000)


async def _statistics_all_time(page: Page) -> None:
    await page.get_by_role("tab", name="Statistics").click()
    await page.get_by_text("all time").click()
    await expect(page.get_by_text("histogram drawn from")).to_be_visible()
    await expect(page.get_by_test_id("stat-predictions")).not_to_have_text("0")


async def _coin(page: Page, url: str, mint: str) -> None:
    await page.goto(f"{url}/ui/coins/{mint}")
    await expect(page.get_by_test_id("coin-row-count")).not_to_have_text("0 metric rows")


async def _alerts(page: Page, url: str) -> None:
    await page.goto(f"{url}/ui/alerts")
    await expect(page.get_by_text("page 1 ·")).to_be_visible()


def _summary(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(ms), 1), "max_ms": max(ms), "loads": len(ms)}


async def _one_visit(page: Page, url: str, names: list[str], mint: str) -> dict[str, float]:
    """Each page in turn, as an operator would click through them; ms until each showed its data."""
    steps: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("overview", lambda: _overview(page, url, names)),
        ("model_log_first_page", lambda: _model_log(page, url, names[0])),
        ("model_statistics_all_time", lambda: _statistics_all_time(page)),
        ("coin", lambda: _coin(page, url, mint)),
        ("alerts", lambda: _alerts(page, url)),
    )
    return {key: await _timed(step) for key, step in steps}


async def _pages(browser: Browser, url: str, names: list[str], mint: str) -> dict[str, Any]:
    figures: dict[str, list[float]] = {}
    for _ in range(LOADS):
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        for key, ms in (await _one_visit(await context.new_page(), url, names, mint)).items():
            figures.setdefault(key, []).append(ms)
        await context.close()
    return {key: _summary(ms) for key, ms in figures.items()}


async def _nothing_found(browser: Browser, url: str, name: str) -> float | None:
    """A filter no prediction matches walks the whole table: measured once, on a page of its own; None
    when the page showed no answer within 300 s (the read failed or is still running)."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await _model_log(page, url, name)
    try:
        return await _timed(lambda: _filter_matching_nothing(page))
    except AssertionError:
        return None
    finally:
        await page.close()


async def _overview_record(db: Database) -> float:
    """The overview's background read of every model's statistics, timed alone on a connection without
    the pool's 60 s statement timeout; ms."""
    conn = await asyncpg.connect(db.dsn)
    try:
        models = await model_reads.list_models(conn)
        return await _timed(lambda: stat_reads.statistics(conn, since=data.stats_since(models)))
    finally:
        await conn.close()


async def _live(browser: Browser, url: str, names: list[str], seconds: float) -> dict[str, Any]:
    """How often the first card's numbers changed while an overview stayed open."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await _overview(page, url, names)
    await page.evaluate(WATCH_CARD, names[0])
    await asyncio.sleep(seconds)
    changes: list[float] = await page.evaluate("window.__changes")
    await page.close()
    # one refresh changes several lines within a few ms: count a change 200 ms after the last as new
    updates = [t for i, t in enumerate(changes) if i == 0 or t - changes[i - 1] > 200]
    gaps = [b - a for a, b in itertools.pairwise(updates)]
    return {
        "watched_seconds": seconds,
        "updates": len(updates),
        "gap_median_ms": round(statistics.median(gaps), 1) if gaps else None,
        "gap_max_ms": round(max(gaps), 1) if gaps else None,
    }


async def _history(db: Database, names: list[str], per_model: int) -> float:
    """`per_model` predictions for each model in the 17 h before now; seconds taken."""
    start = datetime.now(UTC) - timedelta(minutes=per_model / 1000 + 10)
    began = time.perf_counter()
    async with db.pool.acquire() as conn:
        ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM coinfleet_models")}
        for name in names:
            await conn.execute(query("bench_history_predictions"), ids[name], per_model, start, timeout=3600)
        await conn.execute("ANALYZE coinfleet_predictions", timeout=3600)
    return round(time.perf_counter() - began, 1)


async def run(models: int, history: int, rate: float, seconds: float) -> dict[str, Any]:
    settings = Settings()
    configure_logging(settings)
    watch = MachineWatch()
    names = [f"m{i:02d}" for i in range(models)]
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    rows = await asyncio.to_thread(market, int(rate * (seconds + 1200)))
    async with bench_database(settings) as db, Ingester(db.dsn, rows) as ingester:
        await add_models(db.pool, bundle, names)
        history_seconds = await _history(db, names, history)
        supervisor = Supervisor(pool=db.pool, dsn=db.dsn, settings=settings)
        lanes_task = asyncio.create_task(supervisor.run())
        at: list[Listening] = []
        options = HttpOptions(
            host="127.0.0.1", port=0, token=TOKEN, settings=settings, ui=mount, on_listening=at.append
        )
        stop = asyncio.Event()
        http = asyncio.create_task(http_child_until(options, db, supervisor.all_lanes_started, stop))
        try:
            lanes = await wait_for_lanes(supervisor, models)
            while not at:
                if http.done():
                    await http
                await asyncio.sleep(0.05)
            offset = 0
            while not all(sum(lane.stats.predictions.values()) for lane in lanes):
                offset += await ingester.feed(offset, rate=rate, seconds=1.0)
            feed = asyncio.create_task(ingester.feed(offset, rate=rate, seconds=seconds + 3600))
            mint = rows[offset - 1].mint
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                live = await _live(browser, at[0].base_url, names, seconds)
                pages = await _pages(browser, at[0].base_url, names, mint)
                nothing = await _nothing_found(browser, at[0].base_url, names[0])
                await browser.close()
            await supervisor.refresh_lag()
            lag = max(lane.stats.lag_events for lane in lanes)
            record_ms = await _overview_record(db)
            feed.cancel()
        finally:
            stop.set()
            await http
            supervisor.stop()
            await lanes_task
    return {
        "models": models,
        "stored_predictions_per_model": history,
        "events_per_s": rate,
        "history_insert_seconds": history_seconds,
        "overview_live": live,
        "pages": pages,
        "model_log_filter_matching_nothing_ms": nothing,
        "overview_statistics_read_ms": record_ms,
        "max_lane_lag_events_at_end": lag,
        "machine": watch.report(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--history", type=int, default=1_000_000, help="stored predictions per model")
    parser.add_argument("--rate", type=float, default=100, help="events per second fed")
    parser.add_argument("--seconds", type=float, default=60, help="seconds an open overview is watched")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.models, args.history, args.rate, args.seconds))))


if __name__ == "__main__":
    main()
