"""Kept coin windows give exactly the features a whole-window read gives, late rows included."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import asyncpg
import numpy as np
import pytest

from coinfleet.events.cursor import Cursor
from coinfleet.events.log import EventLog
from coinfleet.features.cache import ObservationService
from coinfleet.features.kept import KEPT_ROWS, Key
from coinfleet.features.window import WINDOW_ROWS
from coinfleet.feed.writer import insert_metrics
from coinfleet.metrics import MetricRow
from support import market_rows


@pytest.fixture
def db_dsn(own_db_dsn: str) -> str:
    """A database on the session's own server: a stranger's open transaction would hold these events
    back (see own_server_dsn)."""
    return own_db_dsn


async def _insert(pool: asyncpg.Pool, rows: list[MetricRow]) -> None:
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)


async def _assert_same_as_whole_reads(
    pool: asyncpg.Pool, service: ObservationService, keys: list[Key]
) -> None:
    kept = await service.observe(keys)
    whole = await ObservationService(pool).observe(keys)
    for key, a, b in zip(keys, kept, whole, strict=True):
        assert a is not None and b is not None, key
        assert a.row == b.row
        np.testing.assert_array_equal(a.features, b.features)


def _chunks(rows: list[MetricRow]) -> list[list[MetricRow]]:
    """Rows in inserts of at most one row per coin, as a live feed's insert does."""
    chunks: list[list[MetricRow]] = [[]]
    for row in rows:
        if any(r.mint == row.mint for r in chunks[-1]):
            chunks.append([])
        chunks[-1].append(row)
    return chunks


async def test_a_warm_coins_event_needs_no_read(pool: asyncpg.Pool) -> None:
    rows = sorted(market_rows(coins=4, seconds=600), key=lambda r: r.timestamp)
    service = ObservationService(pool)
    log = EventLog(pool, follower=service.windows)
    cursor = Cursor(tx=0, seq=0)
    seen: set[str] = set()
    for chunk in _chunks(rows):
        await _insert(pool, chunk)
        events = await log.read(cursor, 10_000)
        cursor = events[-1].cursor
        fetched_before, read_before = service.windows.fetched, service.windows.rows_read
        await _assert_same_as_whole_reads(pool, service, [(e.mint, e.ts) for e in events])
        # a new coin reads its window (its first row); a known coin's new row came with its event,
        # where reading whole windows would take up to 30 rows per event
        new = {e.mint for e in events} - seen
        seen |= new
        assert service.windows.fetched - fetched_before == len(new)
        assert service.windows.rows_read - read_before == len(new)


async def test_a_window_read_while_the_coin_has_newer_rows_is_not_extended_past_them(
    pool: asyncpg.Pool,
) -> None:
    rows = sorted(market_rows(coins=2, seconds=900), key=lambda r: r.timestamp)
    coin = Counter(r.mint for r in rows).most_common(1)[0][0]
    own = [r for r in rows if r.mint == coin][:12]
    service = ObservationService(pool)
    log = EventLog(pool, follower=service.windows)
    await _insert(pool, own[:10])
    events = await log.read(Cursor(tx=0, seq=0), 10_000)
    # a lane far behind asks for an old time: the coin's rows after it exist but were followed before
    await service.observe([(coin, own[4].timestamp)])
    await _insert(pool, own[10:])
    await log.read(events[-1].cursor, 10_000)
    await _assert_same_as_whole_reads(pool, service, [(coin, own[11].timestamp)])


async def test_a_late_row_reaches_the_next_window(pool: asyncpg.Pool) -> None:
    rows = sorted(market_rows(coins=2, seconds=900), key=lambda r: r.timestamp)
    coin = Counter(r.mint for r in rows).most_common(1)[0][0]
    own = [r for r in rows if r.mint == coin]
    service = ObservationService(pool)
    log = EventLog(pool, follower=service.windows)
    await _insert(pool, own[:20])
    events = await log.read(Cursor(tx=0, seq=0), 10_000)
    await service.observe([(e.mint, e.ts) for e in events])
    # a row between two stored ones arrives late, then the next regular row
    late = replace(own[10], timestamp=own[10].timestamp + timedelta(milliseconds=1), price_close=123.0)
    await _insert(pool, [late])
    await _insert(pool, [own[20]])
    more = await log.read(events[-1].cursor, 10_000)
    assert [e.ts for e in more] == [late.timestamp, own[20].timestamp]
    await _assert_same_as_whole_reads(pool, service, [(coin, own[20].timestamp)])


async def test_a_lane_behind_the_head_is_served_from_the_kept_rows(pool: asyncpg.Pool) -> None:
    market = market_rows(coins=3, seconds=900)
    coins = {mint for mint, _ in Counter(r.mint for r in market).most_common(3)}
    chunks = _chunks(sorted((r for r in market if r.mint in coins), key=lambda r: r.timestamp))
    service = ObservationService(pool)
    log = EventLog(pool, follower=service.windows)
    cursor = Cursor(tx=0, seq=0)

    async def follow(chunk: list[MetricRow]) -> list[Key]:
        nonlocal cursor
        await _insert(pool, chunk)
        events = await log.read(cursor, 10_000)
        cursor = events[-1].cursor
        return [(e.mint, e.ts) for e in events]

    # a lane at the head until every coin's kept window is full
    head: Counter[str] = Counter()
    while len(head) < len(coins) or min(head.values()) < KEPT_ROWS:
        keys = await follow(chunks.pop(0))
        await service.observe(keys)
        head.update(mint for mint, _ in keys)
    # then the reader follows rows the lane asks for only later, up to 45 of a coin
    behind: list[Key] = []
    while max(Counter(mint for mint, _ in behind).values(), default=0) < 45:
        behind += await follow(chunks.pop(0))
    fetched = service.windows.fetched
    await _assert_same_as_whole_reads(pool, service, behind)
    # a coin's newest KEPT_ROWS - WINDOW_ROWS + 1 rows are served as they stood; older ones are read
    served = KEPT_ROWS - WINDOW_ROWS + 1
    behind_by_coin = Counter(mint for mint, _ in behind).values()
    assert min(behind_by_coin) > WINDOW_ROWS // 2
    assert service.windows.fetched - fetched == sum(max(0, n - served) for n in behind_by_coin) > 0
