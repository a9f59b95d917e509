"""The benchmarks' market-data ingester: a process of its own, as an ingester is in production.

It inserts rows as they come due at a rate, one COPY per tick, and logs when each insert was sent and
when its commit came back. That return is the metric row's commit, from which the benchmarks measure
latency ("metric commit → prediction commit"): the event log's clock is read by the trigger, before
the ingester's commit flushes the WAL, and on this machine kind a core busy elsewhere stretches that
flush from ~1 to ~4 ms at p99 (a plain INSERT loop beside a CPU burner, docs/benchmarks.md) — time no
part of coinfleet can see or shorten. Inside the serving process the feed would share the event loop
with the lanes: its commits would be timed late whenever the loop is busy, and it would take their CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import asyncpg
import numpy as np
import numpy.typing as npt

from coinfleet.db.priority import name_process
from coinfleet.feed.writer import insert_metrics
from coinfleet.metrics import MetricRow

if TYPE_CHECKING:
    from coinfleet.lanes.stats import LaneStats

#: the ingester's name in ps and top (and in `bench api`'s CPU by part)
PROCESS_NAME = "cf-bench-feed"
TICK_SECONDS = 0.02  #: the feed inserts what has come due at most this often
STOP_SECONDS = 10.0  #: how long the process may take to leave before it is killed

Arrivals = Literal["even", "poisson"]


def arrival_offsets(
    count: int, rate: float, arrivals: Arrivals = "even", seed: int = 0
) -> npt.NDArray[np.float64]:
    """When each of `count` rows is due, in seconds after the feed starts, at `rate` rows per second.

    "even" spaces them 1/rate apart; "poisson" draws independent exponential gaps of mean 1/rate
    (seeded, so every setup of a benchmark gets the same arrivals) — the shape of an ingester's
    stream of many coins, whose recorded per-second counts are at least as bursty.
    """
    if arrivals == "even":
        return np.arange(1, count + 1, dtype=np.float64) / rate
    return np.cumsum(np.random.default_rng(seed).exponential(1 / rate, count))


@dataclass(frozen=True)
class Feed:
    """Insert the rows from `start` on (at most `count` of them) at `rate` per second for at most
    `seconds`."""

    start: int
    rate: float
    seconds: float
    arrivals: Arrivals = "even"
    count: int | None = None


@dataclass(frozen=True)
class Fed:
    """What a feed did: rows inserted, and when each insert was sent and committed (epoch seconds)."""

    rows: int
    sent: list[float]
    committed: list[float]


class CommitLog:
    """Every insert's send and commit time, to measure latencies from the metric row's commit."""

    def __init__(self) -> None:
        self._sent: list[float] = []
        self._committed: list[float] = []

    def add(self, fed: Fed) -> None:
        """Log a feed's inserts (each feed starts after the last one ended)."""
        self._sent += fed.sent
        self._committed += fed.committed

    def since_commit(self, stats: LaneStats) -> npt.NDArray[np.float64]:
        """The recent latencies of a lane, from its metric rows' commit instead of their insert.

        A row's insert time (the trigger's clock: the embedded server's, which is this machine's) falls
        within one insert call; the latest call sent at or before it is the row's.
        """
        inserted = stats.inserted.values()
        committed = inserted + stats.latencies.values()
        call = np.searchsorted(np.asarray(self._sent), inserted, side="right") - 1
        known = call >= 0
        since: npt.NDArray[np.float64] = committed[known] - np.asarray(self._committed)[call[known]]
        return since


class Ingester:
    """A child process that feeds a market's rows, moved once so that the last ends at the present,
    into a database: fed faster than their own pace, rows moved to start at the present would soon lie
    ahead of the wall clock, and lanes set such rows aside unscored."""

    def __init__(self, dsn: str, rows: Sequence[MetricRow]) -> None:
        self.commits = CommitLog()
        shift = datetime.now(UTC) - rows[-1].timestamp
        self._conn, child_conn = multiprocessing.Pipe(duplex=True)
        # spawned, not forked: the serving process holds threads and connections a fork would copy
        self._process = multiprocessing.get_context("spawn").Process(
            target=_main, args=(child_conn, dsn, list(rows), shift), name="coinfleet-bench-ingester"
        )

    async def __aenter__(self) -> Ingester:
        await asyncio.to_thread(self._process.start)
        try:
            await self._reply()  # connected
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # it may be leaving on its own
                self._conn.send(None)
        await asyncio.to_thread(self._process.join, STOP_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join)
        self._conn.close()

    async def feed(
        self,
        start: int = 0,
        *,
        rate: float,
        seconds: float,
        arrivals: Arrivals = "even",
        count: int | None = None,
    ) -> int:
        """Insert rows from `start` on (at most `count`) as they come due at `rate` per second for
        `seconds` (rows due within one tick go in together, as an ingester's batch); return how many."""
        self._conn.send(Feed(start=start, rate=rate, seconds=seconds, arrivals=arrivals, count=count))
        fed = await self._reply()
        assert isinstance(fed, Fed)
        self.commits.add(fed)
        return fed.rows

    async def _reply(self) -> object:
        reply = await asyncio.to_thread(self._conn.recv)
        if isinstance(reply, str):
            raise RuntimeError(f"the benchmark's ingester failed: {reply}")
        return reply


def _main(conn: Connection, dsn: str, rows: list[MetricRow], shift: timedelta) -> None:
    name_process(PROCESS_NAME)
    asyncio.run(_serve(conn, dsn, rows, shift))


async def _serve(conn: Connection, dsn: str, rows: list[MetricRow], shift: timedelta) -> None:
    try:
        db = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        conn.send(f"cannot connect: {exc}")
        return
    try:
        conn.send(True)
        while (feed := await asyncio.to_thread(conn.recv)) is not None:
            try:
                stop = None if feed.count is None else feed.start + feed.count
                conn.send(await _feed(db, rows[feed.start : stop], shift, feed))
            except (OSError, asyncpg.PostgresError) as exc:
                conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        await db.close()


async def _feed(db: asyncpg.Connection, rows: list[MetricRow], shift: timedelta, feed: Feed) -> Fed:
    due_at = arrival_offsets(len(rows), feed.rate, feed.arrivals)
    sent: list[float] = []
    committed: list[float] = []
    done = 0
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < feed.seconds and done < len(rows):
        due = int(np.searchsorted(due_at, elapsed, side="right"))
        if due > done:
            batch = [replace(r, timestamp=r.timestamp + shift) for r in rows[done:due]]
            sent.append(time.time())
            done += await insert_metrics(db, batch)
            committed.append(time.time())
        if done < len(rows):
            next_due = min(float(due_at[done]), feed.seconds)
            await asyncio.sleep(max(TICK_SECONDS, next_due - (time.monotonic() - began)))
    return Fed(rows=done, sent=sent, committed=committed)
