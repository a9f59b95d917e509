"""The (tx, seq) cursor never skips a late commit and never repeats an event."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from coinfleet.events.cursor import Cursor, read_events

INSERT = 'INSERT INTO coin_metrics (mint, "timestamp", price_close) VALUES ($1, $2, 1.0)'
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db_dsn(own_db_dsn: str) -> str:
    """A database on the session's own server: a stranger's open transaction would hold these events
    back (see own_server_dsn)."""
    return own_db_dsn


async def test_lower_seq_committed_late_is_read_once(db_dsn: str) -> None:
    early = await asyncpg.connect(db_dsn)
    late = await asyncpg.connect(db_dsn)
    reader = await asyncpg.connect(db_dsn)
    try:
        early_tx = early.transaction()
        await early_tx.start()
        await early.execute(INSERT, "coin-a", T0)  # gets the lower seq
        async with late.transaction():
            await late.execute(INSERT, "coin-b", T0)  # higher seq, commits first
        first = await read_events(reader, Cursor(tx=0, seq=0), 100)
        assert first == []  # coin-b waits behind the open transaction holding the horizon
        await early_tx.commit()
        second = await read_events(reader, Cursor(tx=0, seq=0), 100)
        assert [e.mint for e in second] == ["coin-a", "coin-b"]
        assert await read_events(reader, second[-1].cursor, 100) == []
    finally:
        for conn in (early, late, reader):
            await conn.close()


async def test_one_event_per_row_and_order_by_tx(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.executemany(INSERT, [("c1", T0), ("c2", T0), ("c3", T0)])
        async with conn.transaction():
            await conn.execute(INSERT, "c4", T0)
        events = await read_events(conn, Cursor(tx=0, seq=0), 100)
        assert [e.mint for e in events] == ["c1", "c2", "c3", "c4"]
        assert len({(e.tx, e.seq) for e in events}) == 4
        page = await read_events(conn, Cursor(tx=0, seq=0), 2)
        rest = await read_events(conn, page[-1].cursor, 100)
        assert [e.mint for e in page + rest] == ["c1", "c2", "c3", "c4"]
    finally:
        await conn.close()


async def test_an_incomplete_row_never_fails_the_ingesters_insert(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        # an ingester's older table may allow NULLs; our trigger must not turn them into errors
        await conn.execute("ALTER TABLE coin_metrics ALTER COLUMN mint DROP NOT NULL")
        await conn.execute(INSERT, None, T0)
        await conn.execute(INSERT, "ok-coin", T0)
        events = await read_events(conn, Cursor(tx=0, seq=0), 100)
        assert [e.mint for e in events] == ["ok-coin"]
        assert await conn.fetchval("SELECT count(*) FROM coin_metrics") == 2
    finally:
        await conn.close()
