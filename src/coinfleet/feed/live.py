"""Feeding `coin_metrics` over time: a recorded file at a chosen speed, or the simulator live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.feed.simulator import MarketSimulator
from coinfleet.feed.writer import insert_metrics, metrics_stored
from coinfleet.metrics import MetricRow

Progress = Callable[[int], None]
TICK_SECONDS = 0.1  #: how often a paced feed inserts what has come due
FAST_CHUNK = 1000  #: rows per INSERT when feeding as fast as possible


def shifted(rows: Sequence[MetricRow], start: datetime) -> list[MetricRow]:
    """The rows moved in time so the first one is at `start`; gaps between rows are kept."""
    if not rows:
        return []
    offset = start - rows[0].timestamp
    return [replace(r, timestamp=r.timestamp + offset) for r in rows]


def span(rows: Sequence[MetricRow]) -> timedelta:
    """Time from the first row to the last."""
    return rows[-1].timestamp - rows[0].timestamp if rows else timedelta(0)


async def replay(
    pool: asyncpg.Pool,
    rows: Sequence[MetricRow],
    *,
    speed: float | None,
    loops: int | None = 1,
    on_rows: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Insert rows (sorted by time), paced at `speed`× real time or as fast as possible (None).

    The file's spacing is kept, and no row is ever dated ahead of the wall clock when it is written:
    a pass is shifted to end when its last row is due, and a pass that would overtake the wall clock
    waits. Each pass starts after the previous one ended, so timestamps keep rising; `loops` None
    repeats until `stop` is set. A database outage pauses the replay, which then goes on where it
    was without writing a row twice. Returns how many rows were inserted.
    """
    inserted = 0
    earliest: datetime | None = None  #: the next pass starts no earlier (timestamps keep rising)
    loop_index = 0
    while (loops is None or loop_index < loops) and not (stop and stop.is_set()):
        start = await _pass_start(rows, speed, earliest, stop)
        batch = shifted(rows, start)
        inserted += await _feed(pool, batch, speed=speed, on_rows=on_rows, stop=stop)
        earliest = start + span(rows) + timedelta(seconds=10)
        loop_index += 1
    return inserted


def pass_start(now: datetime, length: timedelta, speed: float | None) -> datetime:
    """Where a pass of `length` replayed from `now` at `speed` (None: at once) starts so that every row
    is at or behind the wall clock when it is written: its last row lands at the moment it is due."""
    if speed is None:
        return now - length
    return now - max(timedelta(0), length - length / speed)


async def _pass_start(
    rows: Sequence[MetricRow], speed: float | None, earliest: datetime | None, stop: asyncio.Event | None
) -> datetime:
    """`pass_start` for now, after waiting until it is no earlier than `earliest`."""
    while True:
        start = pass_start(datetime.now(UTC), span(rows), speed)
        if earliest is None or start >= earliest or (stop and stop.is_set()):
            return max(start, earliest) if earliest is not None else start
        await _sleep((earliest - start).total_seconds(), stop)


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _feed(
    pool: asyncpg.Pool,
    rows: Sequence[MetricRow],
    *,
    speed: float | None,
    on_rows: Progress | None,
    stop: asyncio.Event | None,
) -> int:
    if speed is None:
        return await _feed_fast(pool, rows, on_rows=on_rows, stop=stop)
    return await _feed_paced(pool, rows, speed=speed, on_rows=on_rows, stop=stop)


async def _feed_fast(
    pool: asyncpg.Pool, rows: Sequence[MetricRow], *, on_rows: Progress | None, stop: asyncio.Event | None
) -> int:
    done = 0
    for i in range(0, len(rows), FAST_CHUNK):
        if stop and stop.is_set():
            break
        done += await _insert(pool, rows[i : i + FAST_CHUNK], on_rows, stop)
    return done


async def _feed_paced(
    pool: asyncpg.Pool,
    rows: Sequence[MetricRow],
    *,
    speed: float,
    on_rows: Progress | None,
    stop: asyncio.Event | None,
) -> int:
    if not rows:
        return 0
    first = rows[0].timestamp
    started = time.monotonic()
    done = 0
    while done < len(rows) and not (stop and stop.is_set()):
        data_now = first + timedelta(seconds=(time.monotonic() - started) * speed)
        data_now = min(data_now, datetime.now(UTC))  # never ahead of the wall clock
        due = done
        while due < len(rows) and rows[due].timestamp <= data_now:
            due += 1
        done += await _insert(pool, rows[done:due], on_rows, stop)
        await asyncio.sleep(TICK_SECONDS)
    return done


async def _insert(
    pool: asyncpg.Pool, rows: Sequence[MetricRow], on_rows: Progress | None, stop: asyncio.Event | None = None
) -> int:
    """Insert the rows, waiting out database outages; 0 when `stop` came first. A write cut short by
    an outage may have committed: the rows are looked up before they are written again."""
    if not rows:
        return 0
    outage = Outage("replay")
    while True:
        try:
            count = await _insert_once(pool, rows, check_first=outage.down)
            break
        except DATABASE_ERRORS as exc:
            await outage.wait(exc, stop)
            if stop and stop.is_set():
                return 0
    outage.succeeded()
    if on_rows:
        on_rows(count)
    return count


async def _insert_once(pool: asyncpg.Pool, rows: Sequence[MetricRow], *, check_first: bool) -> int:
    async with pool.acquire() as conn:
        if check_first and await metrics_stored(conn, rows):
            return len(rows)
        return await insert_metrics(conn, rows)


async def simulate(
    pool: asyncpg.Pool,
    simulator: MarketSimulator,
    *,
    stop: asyncio.Event,
    on_rows: Progress | None = None,
) -> int:
    """Insert the simulated market's rows as wall-clock time reaches them, until `stop` is set."""
    inserted = 0
    while not stop.is_set():
        inserted += await _insert(pool, simulator.step_until(datetime.now(UTC)), on_rows, stop)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_SECONDS * 5)
    return inserted
