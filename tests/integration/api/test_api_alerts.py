"""/api/alerts over real HTTP: the outbox, an alert's attempts, retries, a test send to a real receiver."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import asyncpg

from api_support import running_api
from coinfleet.config import Settings
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from coinfleet.service.alerts import webhook_secret
from support import Receiver


async def with_alerts(pool: asyncpg.Pool, bundle: ModelBundle) -> list[int]:
    """A model with a webhook and three alerts: pending, dead, delivered."""
    settings = ModelSettings(webhook_url="http://127.0.0.1:9/hook")
    async with pool.acquire() as conn:
        model = await import_bundle(conn, replace(bundle, name="alpha"), settings=settings)
        ids = []
        for i, state in enumerate(("pending", "dead", "delivered")):
            alert_id = await conn.fetchval(
                "INSERT INTO coinfleet_alerts (model_id, mint, metric_ts, tag, url, idempotency_key, body,"
                " state) VALUES ($1, 'coin', $2, 'alert', 'http://127.0.0.1:9/hook', $3, '{}', $4)"
                " RETURNING id",
                model.id, datetime(2026, 1, 1, minute=i, tzinfo=UTC), f"key-{i}", state,
            )  # fmt: skip
            ids.append(alert_id)
        return ids


async def test_outbox_list_detail_and_retries(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    pending, dead, delivered = await with_alerts(pool, small_bundle)
    async with running_api(db_dsn) as api:
        page = (await api.anonymous.get("/api/alerts")).json()
        assert [a["id"] for a in page["items"]] == [delivered, dead, pending]
        assert [
            a["id"]
            for a in (await api.anonymous.get("/api/alerts", params={"state": "dead"})).json()["items"]
        ] == [dead]
        assert (await api.anonymous.get("/api/alerts", params={"state": "lost"})).status_code == 422
        assert (await api.anonymous.get("/api/alerts", params={"model": "nope"})).status_code == 404
        detail = (await api.anonymous.get(f"/api/alerts/{dead}")).json()
        assert detail["alert"]["state"] == "dead" and detail["attempts"] == []
        assert (await api.anonymous.get("/api/alerts/999999")).status_code == 404
        assert (await api.client.post(f"/api/alerts/{dead}/retry")).json() == {"retried": 1}
        assert (await api.client.post(f"/api/alerts/{dead}/retry")).status_code == 409
        assert (await api.client.post("/api/alerts/999999/retry")).status_code == 404
        assert (await api.client.post("/api/alerts/retry-dead", params={"model": "alpha"})).json() == {
            "retried": 0
        }
        assert (await api.client.post("/api/alerts/retry-dead", params={"model": "nope"})).status_code == 404
        secret = await webhook_secret(pool, "alpha")
        assert secret not in (await api.anonymous.get(f"/api/alerts/{dead}")).text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM coinfleet_alerts WHERE id = $1", dead) == "pending"


async def test_test_send_reaches_a_receiver_and_the_guard_applies(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    await with_alerts(pool, small_bundle)
    allowed = Settings(webhook_allow_private=True)
    async with running_api(db_dsn, settings=allowed) as api:
        sent = await api.client.post("/api/alerts/test", json={"url": receiver.url, "model": "alpha"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["status_code"] == 200
        assert sent.json()["error"] is None
    assert len(receiver.received) == 1
    assert receiver.received[0].key.startswith("cf-test-")
    async with running_api(db_dsn, settings=Settings(webhook_allow_private=False)) as api:
        refused = await api.client.post("/api/alerts/test", json={"url": receiver.url})
        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_request"
        assert (
            await api.client.post("/api/alerts/test", json={"url": receiver.url, "model": "nope"})
        ).status_code == 404
    assert len(receiver.received) == 1
