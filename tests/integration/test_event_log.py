"""The shared event log gives every cursor exactly what reading the database would, with fewer reads."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from coinfleet.events.cursor import Cursor, Event, read_events
from coinfleet.events.log import EventLog

INSERT = 'INSERT INTO coin_metrics (mint, "timestamp", price_close) VALUES ($1, $2, 1.0)'
T0 = datetime(2026, 1, 1, tzinfo=UTC)
START = Cursor(tx=0, seq=0)


@pytest.fixture
def db_dsn(own_db_dsn: str) -> str:
    """A database on the session's own server: a stranger's open transaction would hold these events
    back (see own_server_dsn)."""
    return own_db_dsn


async def _insert(pool: asyncpg.Pool, first: int, count: int) -> None:
    async with pool.acquire() as conn:
        await conn.executemany(
            INSERT, [(f"c{i % 7}", T0 + timedelta(seconds=i)) for i in range(first, first + count)]
        )


async def _walk(log: EventLog, limit: int) -> list[Event]:
    """Everything after the start, batch by batch, as a lane would take it."""
    taken: list[Event] = []
    cursor = START
    while batch := await log.read(cursor, limit):
        taken.extend(batch)
        cursor = batch[-1].cursor
    return taken


async def test_lanes_at_any_position_read_what_the_database_holds(pool: asyncpg.Pool) -> None:
    await _insert(pool, 0, 300)
    async with pool.acquire() as conn:
        everything = await read_events(conn, START, 10_000)
    log = EventLog(pool, capacity=120)  # small enough that the run is trimmed while lanes walk
    rng = random.Random(5)
    for _ in range(40):
        after = rng.choice([START, *[e.cursor for e in everything]])
        limit = rng.randint(1, 90)
        expected = [e for e in everything if e.cursor > after][:limit]
        assert await log.read(after, limit) == expected
    assert await _walk(log, 50) == everything


async def test_a_late_commit_is_neither_skipped_nor_repeated(pool: asyncpg.Pool, db_dsn: str) -> None:
    log = EventLog(pool)
    early = await asyncpg.connect(db_dsn)
    try:
        await _insert(pool, 0, 5)
        first = await log.read(START, 100)
        assert len(first) == 5
        transaction = early.transaction()
        await transaction.start()
        await early.execute(INSERT, "late", T0)  # a lower seq than the next rows, committed after them
        await _insert(pool, 5, 5)
        assert await log.read(first[-1].cursor, 100) == []  # held back behind the open transaction
        await transaction.commit()
        rest = await log.read(first[-1].cursor, 100)
        assert rest[0].mint == "late" and len(rest) == 6
        async with pool.acquire() as conn:
            assert first + rest == await read_events(conn, START, 100)
    finally:
        await early.close()


async def test_lanes_at_the_head_share_one_database_read(pool: asyncpg.Pool) -> None:
    log = EventLog(pool)
    await _insert(pool, 0, 10)
    head = (await log.read(START, 100))[-1].cursor
    await _insert(pool, 10, 10)
    reads = log.reads
    batches = await asyncio.gather(*(log.read(head, 100) for _ in range(20)))
    assert log.reads == reads + 1
    assert all(len(b) == 10 and b == batches[0] for b in batches)
