"""`coinfleet api` serves the UI on the real app (create_app): pages open over WebSockets, no errors."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from playwright.async_api import Page, expect

from browser.conftest import Fleet, _free_port, _wait_until_up


async def test_coinfleet_api_serves_the_ui(fleet: Fleet, page: Page, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": fleet.dsn,
        "COINFLEET_HOME": str(tmp_path),
        "COINFLEET_LOG_LEVEL": "warning",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coinfleet", "api", "--port", str(port), env=env
    )
    url = f"http://127.0.0.1:{port}"
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        await _wait_until_up(url, server, path="/health")
        await page.goto(f"{url}/ui/")
        await expect(page.get_by_test_id("card-alpha")).to_be_visible()
        await page.get_by_role("link", name="alpha").click()
        await expect(page.get_by_test_id("model-status")).to_have_text("active")
        assert any("/ui/_nicegui_ws/" in s for s in sockets), sockets
    finally:
        await page.goto("about:blank")  # leave before the server goes, or the page logs its reconnects
        server.terminate()
        async with asyncio.timeout(30):
            await server.wait()
