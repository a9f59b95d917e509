"""Every page opens on real scored data, shows it, and logs no console errors."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from browser.conftest import Fleet


async def test_overview_shows_every_model(fleet: Fleet, page: Page, screenshots: Path) -> None:
    await page.goto(f"{fleet.url}/ui/")
    for name in (*fleet.active, fleet.inactive, fleet.quarantined):
        await expect(page.get_by_test_id(f"card-{name}")).to_be_visible()
    alpha = page.get_by_test_id("card-alpha")
    await expect(alpha.get_by_test_id("predictions")).not_to_have_text(
        "predictions: negative 0 · positive 0 · alert 0"
    )
    await expect(page.get_by_test_id("card-delta").get_by_text("runner crashed 5 times")).to_be_visible()
    await page.screenshot(path=screenshots / "overview.png", full_page=True)
