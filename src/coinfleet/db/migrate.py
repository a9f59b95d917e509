"""Numbered SQL migrations, applied in order, recorded in a table, guarded by an advisory lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from coinfleet.constants import MIGRATION_LOCK_KEY

log = structlog.get_logger(__name__)
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One `NNNN_name.sql` file."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    folder = resources.files("coinfleet.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(version=int(match[1]), name=match[2], sql=entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if len({m.version for m in found}) != len(found):
        raise RuntimeError("two migration files share a version number")
    return found


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet recorded; safe when several processes do it at once."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS coinfleet_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM coinfleet_migrations")}
        for migration in available():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO coinfleet_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            log.info("migration_applied", version=migration.version, name=migration.name)
            applied_now.append(migration.version)
    return applied_now


async def pending(conn: asyncpg.Connection) -> list[int]:
    """Versions shipped with the package but not applied to this database."""
    exists = await conn.fetchval("SELECT to_regclass('coinfleet_migrations') IS NOT NULL")
    done = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM coinfleet_migrations")}
    return [m.version for m in available() if m.version not in done]
