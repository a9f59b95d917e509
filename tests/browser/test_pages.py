"""Every page opens on real scored data, shows it, and logs no console errors."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from browser.conftest import Fleet, ui_server


async def test_overview_shows_every_model(fleet: Fleet, page: Page, screenshots: Path) -> None:
    await page.goto(f"{fleet.url}/ui/")
    for name in (*fleet.active, fleet.inactive, fleet.quarantined):
        await expect(page.get_by_test_id(f"card-{name}")).to_be_visible()
    alpha = page.get_by_test_id("card-alpha")
    # the record comes from a background read: "reading…" first, then alpha's scored predictions by tag
    await expect(alpha.get_by_test_id("predictions")).to_have_text(
        re.compile(r"^last 24 h: negative \d+ · positive \d+ · alert [1-9]\d*$")
    )
    await expect(alpha.get_by_test_id("record")).to_contain_text("alert precision ")
    await expect(alpha.get_by_test_id("webhook")).not_to_contain_text("last delivery never")
    await expect(page.get_by_test_id("card-delta").get_by_text("runner crashed 5 times")).to_be_visible()
    await page.screenshot(path=screenshots / "overview.png", full_page=True)


async def test_model_detail_shows_log_statistics_and_settings(
    fleet: Fleet, page: Page, screenshots: Path
) -> None:
    await page.goto(f"{fleet.url}/ui/models/alpha")
    await expect(page.get_by_test_id("model-status")).to_have_text("active")
    table = page.get_by_test_id("prediction-table")
    await expect(table.locator("tbody tr")).to_have_count(50)
    await page.screenshot(path=screenshots / "model-predictions.png", full_page=True)
    first = await table.locator("tbody tr").first.inner_text()
    await page.get_by_test_id("next-page").click()
    await expect(table.locator("tbody tr").first).not_to_have_text(first)
    await page.get_by_role("tab", name="Statistics").click()
    await page.get_by_text("all time").click()  # the recorded market is older than the default window
    await expect(page.get_by_test_id("stat-predictions")).not_to_have_text("0")
    await expect(page.get_by_test_id("stat-Brier score")).to_be_visible()
    await expect(page.get_by_test_id("stat-Brier on validation")).to_be_visible()
    await page.screenshot(path=screenshots / "model-statistics.png", full_page=True)
    await page.get_by_role("tab", name="Settings").click()
    await expect(page.get_by_test_id("setting-alert_threshold")).to_have_value("0.6")
    await page.screenshot(path=screenshots / "model-settings.png", full_page=True)


async def test_coin_detail_charts_the_coin_with_predictions(
    fleet: Fleet, page: Page, screenshots: Path
) -> None:
    await page.goto(f"{fleet.url}/ui/coins/{fleet.coin}")
    await expect(page.get_by_test_id("coin-row-count")).not_to_have_text("0 metric rows")
    await expect(page.get_by_role("link", name="alpha:")).to_be_visible()
    await expect(page.get_by_test_id("metric-rows").locator("tbody tr").first).to_be_visible()
    await expect(page.get_by_test_id("prediction-table").locator("tbody tr").first).to_contain_text(
        fleet.coin[:12]
    )
    await page.wait_for_timeout(500)  # let ECharts finish drawing before the picture
    await page.screenshot(path=screenshots / "coin.png")  # the chart and the first rows: for the README


async def test_alerts_page_lists_the_outbox_with_attempts(
    fleet: Fleet, page: Page, screenshots: Path
) -> None:
    await page.goto(f"{fleet.url}/ui/alerts")
    table = page.get_by_test_id("alert-table")
    await expect(table.locator("tbody tr")).to_have_count(50)
    await page.get_by_test_id("alert-state").get_by_text("Dead").click()
    await expect(table.locator("tbody tr").first).to_contain_text("beta")
    await expect(table.locator("tbody tr").first).to_contain_text("dead")
    await page.screenshot(path=screenshots / "alerts.png", full_page=True)
    await table.locator("tbody tr").first.click()
    detail = page.get_by_test_id("alert-detail")
    await expect(detail).to_contain_text("beta")
    await expect(detail.locator("tbody tr")).to_have_count(1)
    await page.screenshot(path=screenshots / "alert-detail.png")


async def test_the_prediction_log_filters_and_says_what_is_wrong(fleet: Fleet, page: Page) -> None:
    await page.goto(f"{fleet.url}/ui/models/alpha")
    rows = page.get_by_test_id("prediction-table").locator("tbody tr")
    await expect(rows).to_have_count(50)
    await page.get_by_test_id("filter-tag").click()
    await page.get_by_role("option", name="alert", exact=True).click()
    await page.get_by_test_id("filter-probability_min").fill("0.6")
    await page.get_by_test_id("filter-apply").click()
    await expect(rows.filter(has_not_text="alert")).to_have_count(0)
    await expect(rows.first).to_contain_text("alert")
    await page.get_by_test_id("filter-probability_min").fill("high")
    await page.get_by_test_id("filter-since").fill("yesterday")
    await page.get_by_test_id("filter-apply").click()
    probability = page.locator("label", has=page.get_by_test_id("filter-probability_min"))
    await expect(probability).to_contain_text("valid number")
    since = page.locator("label", has=page.get_by_test_id("filter-since"))
    await expect(since).to_contain_text("use 1h, 24h")
    await expect(rows.first).to_contain_text("alert")  # the last good page stays


async def test_the_log_searches_further_back_page_by_page(fleet: Fleet, page: Page) -> None:
    """A filter matching only old rows, on a server whose log pages examine 60 predictions each: the
    first page is empty and says how far back it searched; "Search further back" finds the rows."""
    async with ui_server(fleet.dsn, scan_limit=60) as url:
        await page.goto(f"{url}/ui/models/alpha")
        rows = page.get_by_test_id("prediction-table").locator("tbody tr")
        await expect(rows).to_have_count(50)
        await page.get_by_test_id("filter-ath_min").fill("1000000")  # matches nothing
        await page.get_by_test_id("filter-apply").click()
        await expect(page.get_by_text(re.compile(r"0 predictions · searched back to \d{4}-"))).to_be_visible()
        further = page.get_by_test_id("search-further")
        await expect(further).to_be_visible()
        position = page.get_by_text(re.compile(r"^page \d+ · "))
        await further.click()
        await expect(position).to_contain_text("page 2 · 0 predictions · searched back to")
        await page.get_by_test_id("filter-ath_min").fill("")
        await page.get_by_test_id("filter-apply").click()
        await expect(rows).to_have_count(50)  # full pages page on as before
        await expect(further).to_be_hidden()
