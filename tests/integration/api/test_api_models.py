"""/api/models over real HTTP: reads, every write with and without the token, and their error paths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from api_support import running_api
from coinfleet.models.bundle import ARTIFACT_SUFFIX, ModelBundle, write_bundle
from coinfleet.models.importing import import_bundle
from coinfleet.service.alerts import webhook_secret

WRITES = [
    ("POST", "/api/models/alpha/activate", None),
    ("POST", "/api/models/alpha/deactivate", None),
    ("POST", "/api/models/alpha/resume", None),
    ("PATCH", "/api/models/alpha/settings", {"alert_threshold": 0.9}),
    ("POST", "/api/models/alpha/rename", {"new_name": "beta"}),
    ("DELETE", "/api/models/alpha", None),
    ("POST", "/api/alerts/1/retry", None),
    ("POST", "/api/alerts/retry-dead?model=alpha", None),
    ("POST", "/api/alerts/test", {"url": "http://127.0.0.1:9/"}),
    ("POST", "/api/models", None),
]


async def add(pool: asyncpg.Pool, bundle: ModelBundle, name: str, *, activate: bool = True) -> None:
    async with pool.acquire() as conn:
        await import_bundle(conn, replace(bundle, name=name), activate=activate)


async def state(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT name, status, settings::text FROM coinfleet_models ORDER BY id")
    return [(r["name"], r["status"], r["settings"]) for r in rows]


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_writes_without_the_right_token_are_refused(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, token: str | None
) -> None:
    await add(pool, small_bundle, "alpha")
    before = await state(pool)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with running_api(db_dsn) as api:
        for method, path, body in WRITES:
            answer = await api.anonymous.request(method, path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"] == "unauthorized"
    assert await state(pool) == before


async def test_list_show_and_status_changes(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await add(pool, small_bundle, "alpha")
    async with running_api(db_dsn) as api:
        listed = (await api.anonymous.get("/api/models")).json()
        assert [m["name"] for m in listed] == ["alpha"]
        assert listed[0]["lane"]["lag_events"] == 0
        assert (await api.anonymous.get("/api/models/alpha")).json()["status"] == "active"
        missing = await api.anonymous.get("/api/models/nope")
        assert missing.status_code == 404
        assert "no model named 'nope'" in missing.json()["message"]
        assert (await api.client.post("/api/models/alpha/deactivate")).json()["status"] == "inactive"
        not_quarantined = await api.client.post("/api/models/alpha/resume")
        assert not_quarantined.status_code == 409
        assert (await api.client.post("/api/models/alpha/activate")).json()["status"] == "active"
        assert (await api.client.post("/api/models/nope/activate")).status_code == 404
    async with pool.acquire() as conn:
        await conn.execute("UPDATE coinfleet_models SET status = 'quarantined', status_reason = 'crashed'")
    async with running_api(db_dsn) as api:
        resumed = await api.client.post("/api/models/alpha/resume")
        assert resumed.status_code == 200
        assert resumed.json()["status"] == "active"


async def test_settings_are_validated_like_the_cli(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await add(pool, small_bundle, "alpha")
    async with running_api(db_dsn) as api:
        changed = await api.client.patch("/api/models/alpha/settings", json={"alert_threshold": 0.8})
        assert changed.status_code == 200
        assert changed.json()["settings"]["alert_threshold"] == 0.8
        before = await state(pool)
        too_low = await api.client.patch("/api/models/alpha/settings", json={"alert_threshold": 0.2})
        assert too_low.status_code == 422
        assert "alert_threshold" in too_low.json()["message"]
        unknown = await api.client.patch("/api/models/alpha/settings", json={"colour": "red"})
        assert unknown.status_code == 422
        assert "unknown setting" in unknown.json()["message"]
        not_an_object = await api.client.patch("/api/models/alpha/settings", json=[1, 2])
        assert not_an_object.status_code == 422
        secret = await api.client.patch("/api/models/alpha/settings", json={"webhook_secret": "s3cret"})
        assert secret.status_code == 422  # not a setting: secrets are set from a file or the environment
        loopback = await api.client.patch(
            "/api/models/alpha/settings", json={"webhook_url": "http://127.1/x"}
        )
        assert loopback.status_code == 422, "the sender's SSRF guard, at set time"
        assert "loopback" in loopback.json()["message"]
        assert await state(pool) == before
        generated = await webhook_secret(pool, "alpha")
        for path in ("/api/models", "/api/models/alpha"):
            assert generated not in (await api.anonymous.get(path)).text


async def test_rename_and_delete(pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle) -> None:
    await add(pool, small_bundle, "alpha")
    await add(pool, small_bundle, "taken", activate=False)
    async with running_api(db_dsn) as api:
        assert (
            await api.client.post("/api/models/alpha/rename", json={"new_name": "taken"})
        ).status_code == 409
        bad = await api.client.post("/api/models/alpha/rename", json={"new_name": "no spaces"})
        assert bad.status_code == 422
        assert "not allowed" in bad.json()["message"]
        renamed = await api.client.post("/api/models/alpha/rename", json={"new_name": "gamma"})
        assert renamed.json()["name"] == "gamma"
        deleted = await api.client.delete("/api/models/gamma", params={"history": "true"})
        assert deleted.json() == deleted.json() | {"name": "gamma", "predictions_removed": 0}
        assert (await api.client.get("/api/models/gamma")).status_code == 404
        assert [m["name"] for m in (await api.client.get("/api/models")).json()] == ["taken"]
        assert (await api.client.delete("/api/models/gamma")).status_code == 404


async def test_import_a_model_by_upload(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    meta = write_bundle(tmp_path, small_bundle)
    artifact = tmp_path / (small_bundle.name + ARTIFACT_SUFFIX[small_bundle.format])
    async with running_api(db_dsn) as api:
        files = {"meta": meta.read_bytes(), "artifact": artifact.read_bytes()}
        made = await api.client.post(
            "/api/models", files=files, data={"name": "uploaded", "activate": "true"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["name"] == "uploaded" and made.json()["status"] == "active"
        again = await api.client.post("/api/models", files=files, data={"name": "uploaded"})
        assert again.status_code == 409
        broken = await api.client.post("/api/models", files={"meta": b"{not json", "artifact": b"x"})
        assert broken.status_code == 422
        junk = await api.client.post(
            "/api/models", files={"meta": meta.read_bytes(), "artifact": b"junk"}, data={"name": "junk"}
        )
        assert junk.status_code == 422
        assert (await api.client.post("/api/models", data={"name": "x"})).status_code == 422
    assert [name for name, _, _ in await state(pool)] == ["uploaded"]
