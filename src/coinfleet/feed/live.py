"""Feeding `coin_metrics` over time: a recorded file at a chosen speed, or the simulator live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from coinfleet.feed.simulator import MarketSimulator
from coinfleet.feed.writer import insert_metrics
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

    Each loop is shifted to start where the previous one ended, so timestamps keep rising; `loops`
    None repeats until `stop` is set. Returns how many rows were inserted.
    """
    inserted = 0
    start = datetime.now(UTC)
    loop_index = 0
    while (loops is None or loop_index < loops) and not (stop and stop.is_set()):
        batch = shifted(rows, start)
        inserted += await _feed(pool, batch, speed=speed, on_rows=on_rows, stop=stop)
        start = start + span(rows) + timedelta(seconds=10)
        loop_index += 1
    return inserted


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
        done += await _insert(pool, rows[i : i + FAST_CHUNK], on_rows)
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
        due = done
        while due < len(rows) and rows[due].timestamp <= data_now:
            due += 1
        done += await _insert(pool, rows[done:due], on_rows)
        await asyncio.sleep(TICK_SECONDS)
    return done


async def _insert(pool: asyncpg.Pool, rows: Sequence[MetricRow], on_rows: Progress | None) -> int:
    if not rows:
        return 0
    async with pool.acquire() as conn:
        count = await insert_metrics(conn, rows)
    if on_rows:
        on_rows(count)
    return count


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
        inserted += await _insert(pool, simulator.step_until(datetime.now(UTC)), on_rows)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_SECONDS * 5)
    return inserted
