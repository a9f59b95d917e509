"""What an operator changes in the UI reaches the database; what is wrong is refused and changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from playwright.async_api import Page, expect

from browser.conftest import LANE_SETTINGS, Fleet
from coinfleet.db.database import create_pool
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models.bundle import ModelBundle, write_bundle
from coinfleet.models.settings import ModelSettings
from support import Receiver, market_rows, running


async def _model(dsn: str, name: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        row: asyncpg.Record | None = await conn.fetchrow(
            "SELECT status, settings::text FROM coinfleet_models WHERE name = $1", name
        )
        return row
    finally:
        await conn.close()


async def _status(dsn: str, name: str) -> str:
    row = await _model(dsn, name)
    assert row is not None
    return str(row["status"])


async def _settings(dsn: str, name: str) -> ModelSettings:
    row = await _model(dsn, name)
    assert row is not None
    return ModelSettings.model_validate_json(row["settings"])


async def _eventually(check: Callable[[], Awaitable[object]], expected: object, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while await check() != expected:
            await asyncio.sleep(0.1)


async def test_activate_and_deactivate(fleet: Fleet, page: Page) -> None:
    await page.goto(f"{fleet.url}/ui/models/{fleet.inactive}")
    await page.get_by_test_id("activate").click()
    await expect(page.get_by_test_id("model-status")).to_have_text("active")
    assert await _status(fleet.dsn, fleet.inactive) == "active"
    await page.get_by_test_id("deactivate").click()
    await page.get_by_test_id("deactivate-confirm").click()
    await expect(page.get_by_test_id("model-status")).to_have_text("inactive")
    assert await _status(fleet.dsn, fleet.inactive) == "inactive"


async def test_resume_from_the_overview(fleet: Fleet, page: Page) -> None:
    await page.goto(f"{fleet.url}/ui/")
    card = page.get_by_test_id(f"card-{fleet.quarantined}")
    await card.get_by_role("button", name="Resume").click()
    await _eventually(lambda: _status(fleet.dsn, fleet.quarantined), "active")
    await expect(card.get_by_text("quarantined:")).to_be_hidden()


async def test_a_settings_change_is_saved(fleet: Fleet, page: Page) -> None:
    await page.goto(f"{fleet.url}/ui/models/beta")
    await page.get_by_role("tab", name="Settings").click()
    await page.get_by_test_id("setting-alert_threshold").fill("0.85")
    await page.get_by_test_id("setting-coin_blacklist").fill("mintA, mintB")
    await page.get_by_test_id("settings-save").click()
    await expect(page.get_by_text("saved: alert_threshold, coin_blacklist")).to_be_visible()
    saved = await _settings(fleet.dsn, "beta")
    assert (saved.alert_threshold, saved.coin_blacklist) == (0.85, ["mintA", "mintB"])
    assert saved.webhook_url is not None, "fields left alone keep their values"


async def test_a_bad_setting_shows_its_error_and_changes_nothing(
    fleet: Fleet, page: Page, screenshots: Path
) -> None:
    before = await _model(fleet.dsn, "alpha")
    await page.goto(f"{fleet.url}/ui/models/alpha")
    await page.get_by_role("tab", name="Settings").click()
    await page.get_by_test_id("setting-weight").fill("3")
    await page.get_by_test_id("setting-alert_threshold").fill("0.2")
    await page.get_by_test_id("setting-webhook_url").fill("ftp://nowhere")
    await page.get_by_test_id("settings-save").click()
    threshold = page.locator("label", has=page.get_by_test_id("setting-alert_threshold"))
    await expect(threshold).to_contain_text("greater than or equal to 0.5")
    webhook = page.locator("label", has=page.get_by_test_id("setting-webhook_url"))
    await expect(webhook).to_contain_text("must be an http:// or https:// URL")
    await page.screenshot(path=screenshots / "model-settings-error.png", full_page=True)
    assert await _model(fleet.dsn, "alpha") == before, "nothing saved, not even the valid weight"


async def test_a_refused_webhook_url_shows_under_its_field_and_changes_nothing(
    fleet: Fleet, page: Page
) -> None:
    before = await _model(fleet.dsn, "alpha")
    await page.goto(f"{fleet.url}/ui/models/alpha")
    await page.get_by_role("tab", name="Settings").click()
    await page.get_by_test_id("setting-webhook_url").fill("http://169.254.169.254/latest/meta-data")
    await page.get_by_test_id("settings-save").click()
    webhook = page.locator("label", has=page.get_by_test_id("setting-webhook_url"))
    await expect(webhook).to_contain_text("a cloud metadata address")
    await expect(page.get_by_test_id("settings-error")).to_have_text("")
    assert await _model(fleet.dsn, "alpha") == before


async def test_the_overview_updates_when_a_prediction_is_committed(fleet: Fleet, page: Page) -> None:
    await page.goto(f"{fleet.url}/ui/")
    line = page.get_by_test_id("card-alpha").get_by_test_id("stored")
    await expect(line).to_contain_text("stored predictions")
    shown = await line.inner_text()
    pool = await create_pool(fleet.dsn, max_size=4)
    try:
        async with running(Supervisor(pool=pool, dsn=fleet.dsn, settings=LANE_SETTINGS)) as supervisor:
            async with asyncio.timeout(30):
                while not supervisor.lanes:
                    await asyncio.sleep(0.05)
            async with pool.acquire() as conn:
                await insert_metrics(conn, market_rows(coins=3, seconds=60, seed=99))
            await expect(line).not_to_have_text(shown, timeout=30_000)
    finally:
        await pool.close()


async def test_import_validates_then_registers_and_activates(
    fleet: Fleet, page: Page, small_bundle: ModelBundle, tmp_path: Path, screenshots: Path
) -> None:
    meta = write_bundle(tmp_path, small_bundle)
    artifact = tmp_path / json.loads(meta.read_text())["artifact"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / meta.name).write_text(meta.read_text())
    (broken / artifact.name).write_bytes(b"not a model at all")
    await page.goto(f"{fleet.url}/ui/import")
    upload = page.locator("input[type=file]")
    await upload.set_input_files([broken / meta.name, broken / artifact.name])
    await expect(page.get_by_test_id("import-files")).to_contain_text(artifact.name)
    await page.get_by_test_id("import-name").fill("imported-bad")
    await page.get_by_test_id("import-run").click()
    await expect(page.get_by_test_id("import-result")).to_contain_text("refused:")
    await page.screenshot(path=screenshots / "import-refused.png", full_page=True)
    assert (await _model(fleet.dsn, "imported-bad")) is None, "a refused model is not stored"
    await page.goto(f"{fleet.url}/ui/import")
    await page.locator("input[type=file]").set_input_files([meta, artifact])
    await expect(page.get_by_test_id("import-files")).to_contain_text(artifact.name)
    await page.get_by_test_id("import-name").fill("imported-good")
    await page.get_by_test_id("import-activate").click()
    await page.get_by_test_id("import-run").click()
    result = page.get_by_test_id("import-result")
    await expect(result).to_contain_text("imported imported-good: ")
    await expect(result).to_contain_text(f"{len(small_bundle.features)} features")
    await expect(result).to_contain_text("· active")
    await page.screenshot(path=screenshots / "import.png", full_page=True)
    assert await _status(fleet.dsn, "imported-good") == "active"


async def _alert_states(dsn: str, model: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT a.state, count(*) AS n FROM coinfleet_alerts a"
            " JOIN coinfleet_models m ON m.id = a.model_id WHERE m.name = $1 GROUP BY a.state",
            model,
        )
        return {r["state"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def test_retry_one_dead_alert_then_all(fleet: Fleet, page: Page) -> None:
    before = await _alert_states(fleet.dsn, "beta")
    dead, pending = before["dead"], before.get("pending", 0)  # earlier tests may have queued new ones
    await page.goto(f"{fleet.url}/ui/alerts")
    await page.get_by_test_id("alert-state").get_by_text("Dead").click()
    table = page.get_by_test_id("alert-table")
    await expect(table.locator("tbody tr").first).to_contain_text("dead")
    await table.locator("tbody tr").first.click()
    await page.get_by_test_id("retry-one").click()
    await _eventually(
        lambda: _alert_states(fleet.dsn, "beta"), {**before, "dead": dead - 1, "pending": pending + 1}
    )
    await page.get_by_test_id("retry-dead").click()
    del before["dead"]
    await _eventually(lambda: _alert_states(fleet.dsn, "beta"), {**before, "pending": pending + dead})


async def test_send_a_test_alert_to_a_real_receiver(fleet: Fleet, page: Page, receiver: Receiver) -> None:
    await page.goto(f"{fleet.url}/ui/alerts")
    await page.get_by_test_id("test-url").fill(receiver.url)
    await page.get_by_test_id("test-send").click()
    await expect(page.get_by_test_id("test-result")).to_contain_text("HTTP 200")
    await expect(page.get_by_test_id("test-result")).to_contain_text("accepted")
    await page.get_by_test_id("test-url").fill("file:///etc/passwd")
    await page.get_by_test_id("test-send").click()
    await expect(page.locator("label", has=page.get_by_test_id("test-url"))).to_contain_text("http")


async def test_rename_then_delete_with_confirmation(fleet: Fleet, page: Page) -> None:
    await page.goto(f"{fleet.url}/ui/models/{fleet.inactive}")
    await page.get_by_test_id("rename").click()
    await page.get_by_test_id("rename-input").fill("gamma-renamed")
    await page.get_by_test_id("rename-confirm").click()
    await expect(page.get_by_test_id("page-title")).to_have_text("gamma-renamed")
    assert await _model(fleet.dsn, fleet.inactive) is None
    assert await _status(fleet.dsn, "gamma-renamed") == "inactive"
    await page.get_by_test_id("delete").click()
    await page.get_by_text("Also delete its predictions and alerts").click()
    await page.get_by_test_id("delete-confirm").click()
    await expect(page.get_by_test_id("page-title")).to_have_text("Fleet")
    await expect(page.get_by_test_id("card-gamma-renamed")).to_have_count(0)
    assert await _model(fleet.dsn, "gamma-renamed") is None
