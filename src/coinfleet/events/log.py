"""The events of one process, read from the database once for all its lanes.

Twenty lanes at the head of the stream would otherwise each read and decode the same rows. The log
keeps the newest finished events in memory as one run without gaps: it starts after an anchor
cursor and is only ever extended by reading after its own last event, which by the `(tx, seq)`
invariant (docs/architecture.md) is exactly what a lane standing there would read. A lane whose cursor lies
inside the run takes its batch from memory; a lane behind the run reads the database itself, as
before, so a laggard never holds the others' memory; a lane ahead of the run re-anchors it.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from coinfleet.events.cursor import Cursor, Event, events_behind, read_events, read_events_with_rows
from coinfleet.metrics import MetricRow

#: events kept in memory; when more arrive, the older half is dropped
DEFAULT_CAPACITY = 100_000


class Follower(Protocol):
    """Told every event of the stream once, in order, with its metric row (the feature cache's kept
    coin windows, features/kept.py)."""

    def follow(
        self,
        events: Sequence[Event],
        rows: Sequence[MetricRow | None] | None = None,
        *,
        after_gap: bool = False,
    ) -> None:
        """Take the next events; `after_gap` when events before them were never passed on."""


class EventLog:
    """Serves `read_events` for many cursors with one database read per new stretch of events."""

    def __init__(
        self, pool: asyncpg.Pool, *, follower: Follower | None = None, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        self._pool = pool
        self._follower = follower
        self._capacity = capacity
        self._anchor: Cursor | None = None  #: the run holds every finished event after this cursor
        self._events: list[Event] = []
        self._keys: list[tuple[int, int]] = []  #: (tx, seq) of each event, for bisecting
        self._extending: asyncio.Task[None] | None = None
        #: the cursor after which the last read at the head found no finished event but committed ones
        self._held_back_after: Cursor | None = None
        self.reads = 0  #: database reads made (for tests and benchmarks)

    async def read(self, after: Cursor, limit: int) -> list[Event]:
        """Up to `limit` finished events after `after`, oldest first: what `read_events` would give."""
        if self._anchor is None or after > self._tail:
            return await self._reanchor(after, limit)
        if after < self._anchor:
            return await self._read_database(after, limit)  # behind the run: read on its own
        start = bisect.bisect_right(self._keys, (after.tx, after.seq))
        if start == len(self._events):
            await self._extend(limit)
            if after < self._anchor:
                # a lane ahead of the run re-anchored it past `after` while the read was out: the run
                # no longer holds what follows `after` (its first events would skip everything between)
                return await self._read_database(after, limit)
            start = bisect.bisect_right(self._keys, (after.tx, after.seq))
        return self._events[start : start + limit]

    @property
    def _tail(self) -> Cursor:
        return self._events[-1].cursor if self._events else self._anchor or Cursor(tx=0, seq=0)

    async def _read_database(self, after: Cursor, limit: int) -> list[Event]:
        self.reads += 1
        async with self._pool.acquire() as conn:
            return await read_events(conn, after, limit)

    def held_back(self, after: Cursor) -> bool:
        """Whether the last read at the head, after `after`, found nothing although committed events lie
        there: `read_events` leaves an event out while an older transaction is open (a lane's store,
        another ingester's insert), and no NOTIFY will say when that one ends."""
        return self._held_back_after == after

    async def _read_head(self, after: Cursor, limit: int) -> tuple[list[Event], list[MetricRow | None]]:
        """A read that extends the run: with the events' rows when a follower takes them. One that finds
        nothing also asks whether events are held back (see `held_back`)."""
        self.reads += 1
        rows: list[MetricRow | None] = []
        async with self._pool.acquire() as conn:
            if self._follower is None:
                events = await read_events(conn, after, limit)
            else:
                events, rows = await read_events_with_rows(conn, after, limit)
            held = not events and await events_behind(conn, after) > 0  # all of them held back
        self._held_back_after = after if held else None
        return events, rows

    async def _reanchor(self, after: Cursor, limit: int) -> list[Event]:
        events, rows = await self._read_head(after, limit)
        if self._anchor is None or after > self._tail:  # still ahead once the read is back
            self._anchor, self._events, self._keys = after, [], []
            self._append(events, rows, after_gap=True)
        return events

    async def _extend(self, limit: int) -> None:
        """Read after the run's last event; concurrent callers share one read."""
        if self._extending is None or self._extending.done():
            self._extending = asyncio.create_task(self._extend_once(limit))
        await asyncio.shield(self._extending)

    async def _extend_once(self, limit: int) -> None:
        tail = self._tail
        events, rows = await self._read_head(tail, limit)
        if tail == self._tail:  # a re-anchor while reading would make these events a gap's far side
            self._append(events, rows)

    def _append(self, events: list[Event], rows: list[MetricRow | None], *, after_gap: bool = False) -> None:
        if self._follower is not None:
            self._follower.follow(events, rows, after_gap=after_gap)
        self._events.extend(events)
        self._keys.extend((e.tx, e.seq) for e in events)
        if len(self._events) > self._capacity:
            drop = len(self._events) // 2
            self._anchor = self._events[drop - 1].cursor
            del self._events[:drop], self._keys[:drop]
