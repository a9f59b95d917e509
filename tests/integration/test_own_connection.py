"""A lane's own connection: its settings apply, a broken one is replaced, a statement error keeps it."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from coinfleet.db.database import OwnConnection
from coinfleet.lanes.starter import LANE_SERVER_SETTINGS


async def test_settings_apply_and_the_connection_is_kept(db_dsn: str) -> None:
    own = OwnConnection(db_dsn, server_settings=LANE_SERVER_SETTINGS)
    try:
        async with own.use() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
            first = await conn.fetchval("SELECT pg_backend_pid()")
        async with own.use() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == first
        with pytest.raises(asyncpg.UndefinedTableError):  # the statement's error, not the connection's
            async with own.use() as conn:
                await conn.execute("SELECT * FROM no_such_table")
        async with own.use() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == first
    finally:
        await own.close()


async def test_a_broken_connection_is_replaced(db_dsn: str) -> None:
    own = OwnConnection(db_dsn)
    admin = await asyncpg.connect(db_dsn)
    try:
        async with own.use() as conn:
            first = await conn.fetchval("SELECT pg_backend_pid()")
        # waits until the backend is gone (up to 5 s); a use while the loss is not yet seen fails once
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", first)
        with contextlib.suppress(asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
            async with own.use() as conn:
                await conn.fetchval("SELECT 1")
        async with own.use() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await own.close()
        await admin.close()


async def test_a_cancelled_statement_leaves_no_half_used_connection(db_dsn: str) -> None:
    own = OwnConnection(db_dsn)
    try:
        async with own.use() as conn:
            first = await conn.fetchval("SELECT pg_backend_pid()")

        async def slow() -> None:
            async with own.use() as conn:
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with own.use() as conn:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await own.close()
