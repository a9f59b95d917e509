"""Model versions, export and the webhook secret over real HTTP: happy paths, errors, the token."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from api_support import running_api
from coinfleet.models.bundle import ARTIFACT_SUFFIX, ModelBundle, write_bundle
from coinfleet.models.importing import import_bundle
from coinfleet.service.alerts import webhook_secret

WRITES = [
    ("POST", "/api/models/alpha/versions"),
    ("POST", "/api/models/alpha/promote"),
    ("POST", "/api/models/alpha/webhook-secret"),
]


async def add(pool: asyncpg.Pool, bundle: ModelBundle, name: str = "alpha") -> None:
    async with pool.acquire() as conn:
        await import_bundle(conn, replace(bundle, name=name), activate=True)


async def stored(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT name, version, status FROM coinfleet_models ORDER BY id")
        secrets = await conn.fetch("SELECT * FROM coinfleet_webhook_secrets ORDER BY model_id")
    return [str(tuple(row)) for row in [*rows, *secrets]]


def upload(bundle: ModelBundle, folder: Path) -> dict[str, tuple[str, bytes]]:
    meta = write_bundle(folder, bundle)
    artifact = folder / (bundle.name + ARTIFACT_SUFFIX[bundle.format])
    return {"file": (artifact.name, artifact.read_bytes()), "meta": (meta.name, meta.read_bytes())}


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_writes_without_the_right_token_are_refused(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, token: str | None
) -> None:
    await add(pool, small_bundle)
    before = await stored(pool)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with running_api(db_dsn) as api:
        for method, path in WRITES:
            answer = await api.anonymous.request(method, path, json={"version": 1}, headers=headers)
            assert answer.status_code == 401, (path, answer.text)
    assert await stored(pool) == before


async def test_a_new_version_a_rollback_and_a_shadow(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    await add(pool, small_bundle)
    files = upload(small_bundle, tmp_path)
    async with running_api(db_dsn) as api:
        listed = (await api.anonymous.get("/api/models/alpha/versions")).json()
        assert [(v["version"], v["serving"]) for v in listed] == [(1, True)]
        assert (await api.anonymous.get("/api/models/nope/versions")).status_code == 404

        junk = await api.client.post("/api/models/alpha/versions", files={"file": ("m.xgb.json", b"{x")})
        assert junk.status_code == 422
        served = await api.client.post("/api/models/alpha/versions", files=files)
        assert served.status_code == 201, served.text
        assert served.json()["version"] == 2
        listed = (await api.client.get("/api/models/alpha/versions")).json()
        assert [(v["version"], v["serving"]) for v in listed] == [(1, False), (2, True)]

        back = await api.client.post("/api/models/alpha/promote", json={"version": 1})
        assert back.status_code == 200 and back.json()["version"] == 1
        missing = await api.client.post("/api/models/alpha/promote", json={"version": 9})
        assert missing.status_code == 404 and "9" in missing.json()["message"]
        assert (await api.client.post("/api/models/alpha/promote", json={"version": 0})).status_code == 422

        no_shadow = await api.anonymous.get("/api/models/alpha/compare")
        assert no_shadow.status_code == 422 and "shadow" in no_shadow.json()["message"]
        shadow = await api.client.post("/api/models/alpha/versions", files=files, data={"shadow": "true"})
        assert shadow.status_code == 201, shadow.text
        assert shadow.json()["name"] != "alpha"
        compared = await api.anonymous.get("/api/models/alpha/compare")
        assert compared.status_code == 200 and compared.json() == []  # nothing scored by both yet
        promoted = await api.client.post("/api/models/alpha/promote", json={"version": 3})
        assert promoted.json()["version"] == 3
        assert [m["name"] for m in (await api.client.get("/api/models")).json()] == ["alpha"]


async def test_export_gives_what_import_takes_back(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await add(pool, small_bundle)
    async with running_api(db_dsn) as api:
        answer = await api.anonymous.get("/api/models/alpha/export")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        assert 'filename="alpha.zip"' in answer.headers["content-disposition"]
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
        meta = json.loads(archive.read("alpha.model.json"))
        assert meta["name"] == "alpha" and meta["features"] == list(small_bundle.features)
        assert archive.read(meta["artifact"]) == small_bundle.artifact
        files = {"meta": archive.read("alpha.model.json"), "artifact": archive.read(meta["artifact"])}
        again = await api.client.post("/api/models", files=files, data={"name": "copy"})
        assert again.status_code == 201, again.text
        assert again.json()["sha256"] == (await api.client.get("/api/models/alpha")).json()["sha256"]
        assert (await api.anonymous.get("/api/models/alpha/export?version=7")).status_code == 422
        assert (await api.anonymous.get("/api/models/nope/export")).status_code == 404


async def test_the_webhook_secret_is_shown_once_when_generated(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await add(pool, small_bundle)
    first = await webhook_secret(pool, "alpha")
    async with running_api(db_dsn) as api:
        made = await api.client.post("/api/models/alpha/webhook-secret")
        assert made.status_code == 200, made.text
        assert made.headers["cache-control"] == "no-store"
        body = made.json()
        assert body["generated"] is True and body["secret"] != first
        assert body["secret"] == await webhook_secret(pool, "alpha")
        for path in ("/api/models", "/api/models/alpha", "/api/models/alpha/versions"):
            assert body["secret"] not in (await api.client.get(path)).text

        chosen = "a-secret-of-32-characters-length"
        given = await api.client.post("/api/models/alpha/webhook-secret", json={"secret": chosen})
        assert given.json() == {"model": "alpha", "generated": False, "secret": None}
        assert await webhook_secret(pool, "alpha") == chosen
        short = await api.client.post("/api/models/alpha/webhook-secret", json={"secret": "short"})
        assert short.status_code == 422
        assert (await api.client.post("/api/models/nope/webhook-secret")).status_code == 404
    assert await webhook_secret(pool, "alpha") == chosen


async def test_calibration_and_drift_with_the_clis_validation(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    await add(pool, small_bundle)
    async with running_api(db_dsn) as api:
        calibrated = await api.anonymous.get("/api/statistics/calibration", params={"since": "24h"})
        assert calibrated.status_code == 200 and calibrated.json() == []  # nothing judged yet
        drifted = await api.anonymous.get("/api/statistics/drift", params={"model": "alpha"})
        assert drifted.status_code == 200, drifted.text
        (report,) = drifted.json()
        assert report["name"] == "alpha" and report["rows"] == 0 and report["note"]
        for path, params in [
            ("/api/statistics/calibration", {"buckets": "1"}),
            ("/api/statistics/calibration", {"since": "last tuesday"}),
            ("/api/statistics/drift", {"hours": "0"}),
        ]:
            assert (await api.anonymous.get(path, params=params)).status_code == 422, (path, params)
