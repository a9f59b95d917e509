"""The shared event log gives every cursor exactly what reading the database would, with fewer reads."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import cast

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


class HeldRead:
    """The pool, whose next connection is handed out only when `release` is called: a read that stays in
    flight while other reads come and go."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._hold = False
        self._held = asyncio.Event()
        self._released = asyncio.Event()

    def hold_next(self) -> None:
        self._hold = True

    async def until_held(self) -> None:
        await asyncio.wait_for(self._held.wait(), 10)

    def release(self) -> None:
        self._released.set()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        if self._hold:
            self._hold = False
            self._held.set()
            await self._released.wait()
        async with self._pool.acquire() as conn:
            yield conn


async def test_a_lane_at_the_tail_keeps_its_place_when_a_lane_far_ahead_moves_the_log_meanwhile(
    pool: asyncpg.Pool,
) -> None:
    await _insert(pool, 0, 30)
    async with pool.acquire() as conn:
        everything = await read_events(conn, START, 100)
    reads = HeldRead(pool)
    log = EventLog(cast(asyncpg.Pool, reads))
    assert await log.read(START, 10) == everything[:10]  # the log's run ends at the tenth event
    reads.hold_next()
    behind = asyncio.create_task(log.read(everything[9].cursor, 10))  # at the run's tail: extends it
    await reads.until_held()
    # a lane ahead of the run (its model was taken over from a worker further on) re-anchors it there
    assert await log.read(everything[19].cursor, 10) == everything[20:]
    reads.release()
    assert await behind == everything[10:20]  # not the re-anchored run's events: 10 events skipped


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
