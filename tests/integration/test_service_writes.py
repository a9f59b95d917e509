"""The write side of the service layer on real PostgreSQL: import, status changes, settings, alert retries."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from test_evaluation_support import T0

from coinfleet.config import Settings
from coinfleet.errors import (
    AlertNotFound,
    Conflict,
    InvalidRequest,
    ModelExists,
    ModelLoadError,
    ModelNotFound,
    SettingError,
    WebhookRefused,
)
from coinfleet.models.bundle import ModelBundle
from coinfleet.service import alerts, models


async def test_import_then_status_changes(pool: asyncpg.Pool, small_bundle: ModelBundle) -> None:
    imported = await models.import_model(pool, replace(small_bundle, name="m1"))
    assert (imported.name, imported.status, imported.lane.lag_events) == ("m1", "inactive", 0)
    assert imported.features == list(small_bundle.features)
    with pytest.raises(ModelExists):
        await models.import_model(pool, replace(small_bundle, name="m1"))
    with pytest.raises(SettingError, match="not allowed"):
        await models.import_model(pool, replace(small_bundle, name="no spaces"))
    with pytest.raises(ModelLoadError):
        await models.import_model(pool, replace(small_bundle, name="broken", artifact=b"{not a model"))
    assert [m.name for m in await models.list_models(pool)] == ["m1"], "a failed import changes nothing"
    assert (await models.activate_model(pool, "m1")).status == "active"
    with pytest.raises(Conflict, match="not quarantined"):
        await models.resume_model(pool, "m1")
    deactivated = await models.deactivate_model(pool, "m1")
    assert (deactivated.status, deactivated.status_reason) == ("inactive", "deactivated by operator")
    await pool.execute(
        "UPDATE coinfleet_models SET status = 'quarantined', status_reason = 'x' WHERE name = 'm1'"
    )
    resumed = await models.resume_model(pool, "m1")
    assert (resumed.status, resumed.status_reason) == ("active", None)
    with pytest.raises(ModelNotFound):
        await models.activate_model(pool, "m2")
    auto = await models.import_model(pool, replace(small_bundle, name="m2"), activate=True)
    assert auto.status == "active"


async def test_settings_are_validated_and_a_bad_change_changes_nothing(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    await models.import_model(pool, replace(small_bundle, name="m"))
    changed = await models.update_settings(
        pool, "m", {"alert_threshold": 0.85, "phases": [1, 2]}, allow_private=False
    )
    assert (changed.settings["alert_threshold"], changed.settings["phases"]) == (0.85, [1, 2])
    for bad, message in (
        ({"alert_threshold": 0.2}, "alert_threshold"),
        ({"treshold": 0.8}, "unknown setting"),
        ({"coin_filter_mode": "whitelist"}, "whitelist"),
    ):
        with pytest.raises(SettingError, match=message):
            await models.update_settings(pool, "m", bad, allow_private=False)
    assert isinstance(SettingError("x"), InvalidRequest)
    after = await models.show_model(pool, "m")
    assert (after.settings["alert_threshold"], after.settings["phases"]) == (0.85, [1, 2])


async def test_a_webhook_url_the_sender_would_refuse_is_refused_when_set(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    await models.import_model(pool, replace(small_bundle, name="m"))
    for url, reason in (
        ("http://127.0.0.1:9/hook", "a loopback address"),
        ("http://localhost:9/hook", "a loopback address"),
        ("http://10.1.2.3/hook", "a private or reserved address"),
        ("http://169.254.169.254/latest", "a cloud metadata address"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ):
        with pytest.raises(SettingError, match=f"webhook_url: .*{reason}"):
            await models.update_settings(pool, "m", {"webhook_url": url}, allow_private=False)
    assert (await models.show_model(pool, "m")).settings["webhook_url"] is None, "nothing changed"
    with pytest.raises(SettingError, match="cloud metadata"):  # refused even when private ones are allowed
        await models.update_settings(
            pool, "m", {"webhook_url": "http://169.254.169.254/"}, allow_private=True
        )
    allowed = await models.update_settings(
        pool, "m", {"webhook_url": "http://127.0.0.1:9/hook"}, allow_private=True
    )
    assert allowed.settings["webhook_url"] == "http://127.0.0.1:9/hook"
    cleared = await models.update_settings(pool, "m", {"webhook_url": None}, allow_private=False)
    assert cleared.settings["webhook_url"] is None


async def _dead_alert(conn: asyncpg.Connection, model_id: int, key: str, state: str = "dead") -> int:
    alert_id: int = await conn.fetchval(
        "INSERT INTO coinfleet_alerts (model_id, mint, metric_ts, tag, url, idempotency_key, body, state,"
        " attempts) VALUES ($1, 'coin', $2, 'alert', 'http://127.0.0.1:9/old', $3, '{}', $4, 10)"
        " RETURNING id",
        model_id,
        T0 + timedelta(seconds=len(key)),
        key,
        state,
    )
    return alert_id


async def test_alert_retries(pool: asyncpg.Pool, small_bundle: ModelBundle) -> None:
    model = await models.import_model(pool, replace(small_bundle, name="m"))
    async with pool.acquire() as conn:
        one, two = await _dead_alert(conn, model.id, "a"), await _dead_alert(conn, model.id, "bb")
        delivered = await _dead_alert(conn, model.id, "ccc", state="delivered")
    with pytest.raises(WebhookRefused, match="webhook_url"):
        await alerts.retry_alert(pool, one, default_url=None)
    assert await alerts.retry_alert(pool, one, default_url="http://127.0.0.1:9/new") == 1
    retried = await alerts.get_alert(pool, one)
    assert (retried.state, retried.attempts, retried.url) == ("pending", 0, "http://127.0.0.1:9/new")
    assert await alerts.retry_alert(pool, delivered, default_url="http://127.0.0.1:9/new") == 0
    with pytest.raises(AlertNotFound):
        await alerts.retry_alert(pool, 10**9, default_url="http://127.0.0.1:9/new")
    await models.update_settings(pool, "m", {"webhook_url": "http://127.0.0.1:9/own"}, allow_private=True)
    assert await alerts.retry_dead_alerts(pool, "m", default_url=None) == 1
    assert (await alerts.get_alert(pool, two)).url == "http://127.0.0.1:9/own"
    assert await alerts.retry_dead_alerts(pool, "m", default_url=None) == 0


async def test_a_test_send_with_a_model_needs_the_database_and_the_model() -> None:
    settings = Settings(webhook_allow_private=True)
    with pytest.raises(InvalidRequest, match="database"):
        await alerts.send_test_alert(settings, "http://127.0.0.1:9/hook", model="m")


async def test_a_test_send_names_an_unknown_model(pool: asyncpg.Pool) -> None:
    with pytest.raises(ModelNotFound):
        await alerts.send_test_alert(Settings(), "http://127.0.0.1:9/hook", db=pool, model="nope")
