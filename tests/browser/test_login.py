"""With a token (the UI reachable beyond loopback), no page shows until the browser presents it."""

from __future__ import annotations

from playwright.async_api import Page, expect

from browser.conftest import ui_server


async def test_pages_need_the_token(db_dsn: str, page: Page) -> None:
    async with ui_server(db_dsn, "s3cret-token") as url:
        await page.goto(f"{url}/ui/alerts")
        await expect(page.get_by_test_id("login-token")).to_be_visible()
        await expect(page.get_by_test_id("page-title")).to_have_count(0)
        await page.get_by_test_id("login-token").fill("wrong")
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_text("wrong token")).to_be_visible()
        await page.get_by_test_id("login-token").fill("s3cret-token")
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_test_id("page-title")).to_have_text("Fleet")
        await expect(page.get_by_text("No models yet")).to_be_visible()
        await page.goto(f"{url}/ui/alerts")
        await expect(page.get_by_test_id("page-title")).to_have_text("Alerts")
