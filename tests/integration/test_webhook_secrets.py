"""Every model has a webhook secret of its own, kept out of its settings, before and after migration 14."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from coinfleet.alerts import secrets
from coinfleet.db.migrate import migrate
from coinfleet.models.registry import get
from support import migrated_before

SECRETS_MIGRATION = 14


@pytest.fixture
async def before_secrets(server_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A database migrated up to, not including, the secrets migration."""
    async with migrated_before(server_dsn, SECRETS_MIGRATION) as conn:
        yield conn


async def old_model(conn: asyncpg.Connection, name: str, settings: dict[str, object]) -> int:
    model_id: int = await conn.fetchval(
        "INSERT INTO coinfleet_models (name, algorithm, format, artifact, artifact_sha256, features,"
        " target, settings) VALUES ($1, 'none', 'none', '\\x00'::bytea, 'x', '{}',"
        ' \'{"kind": "change", "direction": "up", "change_percent": 10, "horizon_seconds": 60}\'::jsonb,'
        " $2::jsonb) RETURNING id",
        name,
        json.dumps(settings),
    )
    return model_id


async def test_the_migration_moves_a_set_secret_out_of_the_settings_and_gives_the_others_one(
    before_secrets: asyncpg.Connection,
) -> None:
    conn = before_secrets
    own = await old_model(conn, "own", {"webhook_secret": "an-old-secret", "alert_threshold": 0.8})
    unsigned = await old_model(conn, "unsigned", {"webhook_secret": None})
    plain = await old_model(conn, "plain", {})
    await migrate(conn)
    assert await secrets.get(conn, own) == "an-old-secret"
    generated = {await secrets.get(conn, unsigned), await secrets.get(conn, plain)}
    assert len(generated) == 2 and all(len(s) >= 32 for s in generated)
    stored = await conn.fetch("SELECT settings FROM coinfleet_models ORDER BY id")
    assert all("webhook_secret" not in json.loads(r["settings"]) for r in stored)
    model = await get(conn, "own")  # the settings validate again
    assert model.settings.alert_threshold == 0.8 and "secret" not in repr(model)


async def test_a_new_model_gets_its_own_random_secret(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await old_model(conn, "first", {})
        second = await old_model(conn, "second", {})
        one, two = await secrets.get(conn, first), await secrets.get(conn, second)
        assert one != two and len(one) >= 32
        await secrets.replace(conn, first, "a-secret-of-my-own-01")
        assert await secrets.get(conn, first) == "a-secret-of-my-own-01"
