"""Kept coin windows: each recently seen coin's newest rows, held in memory so that a coin's next event
reads only the rows that are new since then, or none at all (the feature cache's source of windows).

A row that arrives late (its time at or before a kept window's newest time) would be missed that way:
`follow` is told every event once, in stream order, and drops the window of a coin that got one.

`follow` also gets each event's row; it appends it to the coin's kept window when that window is known
to miss no row after its newest time — the read that made it saw no later row of the coin, and no event
of the coin was followed while it ran — so an event at the head is served with no read at all. Every
later row of such a coin comes through `follow` in stream order: a newer one extends the window, an
older one (late) drops it. A kept window holds up to KEPT_ROWS rows, so an event of a coin that has had
newer rows since (a lane behind the head) is served from it as well.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg
import numpy as np

from coinfleet.db.sql import query
from coinfleet.events.cursor import Event
from coinfleet.features.window import WINDOW_ROWS, FloatArray
from coinfleet.feed.writer import metric_row
from coinfleet.metrics import NUMERIC_COLUMNS, MetricRow

Key = tuple[str, datetime]
#: rows a kept coin window holds: the newest window and as many rows before it, so that a lane up to
#: WINDOW_ROWS of the coin's rows behind the head is served from memory too
KEPT_ROWS = 2 * WINDOW_ROWS


class KeptWindows:
    """The kept windows of up to `size` coins (the least recently kept go first), and the reads that
    make them."""

    def __init__(self, pool: asyncpg.Pool, *, size: int = 20_000) -> None:
        self._pool = pool
        self._coins: OrderedDict[str, KeptWindow] = OrderedDict()
        self._size = size
        self._reads: list[_Read] = []  #: window reads in flight
        self.fetched = 0  #: keys read from the database (the rest came from kept windows)
        self.rows_read = 0  #: metric rows those reads returned

    def follow(
        self,
        events: Sequence[Event],
        rows: Sequence[MetricRow | None] | None = None,
        *,
        after_gap: bool = False,
    ) -> None:
        """Events in stream order, each once, with their rows if known; after a gap in that order nothing
        kept can be trusted."""
        if after_gap:
            self._coins.clear()
        coins = self._coins
        for event, row in zip(events, rows or itertools.repeat(None, len(events)), strict=True):
            for read in self._reads:
                read.followed(event.mint)
            kept = coins.get(event.mint)
            if kept is None:
                continue
            if event.ts <= kept.last_ts:
                del coins[event.mint]
            elif kept.complete:
                coins[event.mint] = kept.appended(row) if row is not None else replace(kept, complete=False)

    async def windows(self, keys: list[Key]) -> list[KeptWindow | None]:
        """Each key's window as it stood at the key's time (None where the coin has no row then): a kept
        window holding the key's row serves it as it stood then; one ending earlier is the base that the
        rows after it extend; otherwise the key's window is read whole."""
        windows: list[KeptWindow | None] = [_served(self._coins.get(mint), t) for mint, t in keys]
        wanted = [
            i for i, ((_, t), k) in enumerate(zip(keys, windows, strict=True)) if k is None or k.last_ts != t
        ]
        if wanted:
            read = await self._read([keys[i] for i in wanted], [windows[i] for i in wanted])
            for i, window in zip(wanted, read, strict=True):
                windows[i] = window
        return windows

    async def _read(self, keys: list[Key], kept: list[KeptWindow | None]) -> list[KeptWindow | None]:
        bases = [k if k is not None and t > k.last_ts else None for (_, t), k in zip(keys, kept, strict=True)]
        read = _Read(frozenset(mint for mint, _ in keys))
        self._reads.append(read)
        try:
            async with self._pool.acquire() as conn:
                records = await conn.fetch(
                    query("fetch_windows"),
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [b.last_ts if b is not None else None for b in bases],
                    WINDOW_ROWS,
                )
        finally:
            self._reads.remove(read)
        self.fetched += len(keys)
        self.rows_read += len(records)
        grouped: dict[int, list[asyncpg.Record]] = {}
        for record in records:
            grouped.setdefault(record["i"], []).append(record)
        windows = []
        for i, ((mint, _), base) in enumerate(zip(keys, bases, strict=True), start=1):
            found = grouped.get(i, [])
            window = _extend(base, found)
            if window is not None:
                complete = bool(found) and not found[0]["has_newer"] and mint not in read.touched
                window = replace(window, complete=complete)
                self._keep(mint, window)
            windows.append(window)
        return windows

    def _keep(self, mint: str, window: KeptWindow) -> None:
        kept = self._coins.get(mint)
        if kept is None or window.last_ts > kept.last_ts:
            self._coins[mint] = window
            self._coins.move_to_end(mint)
            while len(self._coins) > self._size:
                self._coins.popitem(last=False)


@dataclass(frozen=True, slots=True)
class KeptWindow:
    """A coin's last rows (up to KEPT_ROWS) at or before `last_ts`, oldest first."""

    values: FloatArray  #: [rows, len(WINDOW_COLUMNS)]: `t`, then every numeric column
    #: the MetricRow of each row of `values` where it is known (rows that came from follow, and the
    #: newest row of a read); an event is served from its row only
    rows: tuple[MetricRow | None, ...]
    first_seen: float  #: epoch seconds
    whole: bool  #: `values` starts at the coin's first row
    #: every row of the coin after `last_ts` will reach `follow` (see the module's doc)
    complete: bool = False

    @property
    def last_ts(self) -> datetime:
        """The time of the newest row."""
        return self.last_row.timestamp

    @property
    def last_row(self) -> MetricRow:
        """The newest row (the one an event at `last_ts` scores)."""
        row = self.rows[-1]
        assert row is not None, "a kept window always knows its newest row"
        return row

    def appended(self, row: MetricRow) -> KeptWindow:
        """The window with a newer row at its end."""
        fresh = np.array([[row.timestamp.timestamp(), *_numbers(row)]], dtype=np.float64)
        return self.extended(fresh, (row,))

    def extended(self, values: FloatArray, rows: tuple[MetricRow | None, ...]) -> KeptWindow:
        """The window with newer rows at its end; the oldest fall out past KEPT_ROWS."""
        joined = np.concatenate((self.values, values))
        whole = self.whole and len(joined) <= KEPT_ROWS
        kept_rows = (*self.rows, *rows)[-KEPT_ROWS:]
        return KeptWindow(joined[-KEPT_ROWS:], kept_rows, self.first_seen, whole, self.complete)

    def at(self, ts: datetime) -> KeptWindow | None:
        """The window as it stood when its row at `ts` was the newest; None unless it holds that row
        and a whole window's rows up to it (or every row of the coin up to it)."""
        if ts == self.last_ts:
            return self
        j = int(np.searchsorted(self.values[:, 0], ts.timestamp()))
        row = self.rows[j] if j < len(self.rows) else None
        if row is None or row.timestamp != ts or (j < WINDOW_ROWS - 1 and not self.whole):
            return None
        return KeptWindow(self.values[: j + 1], self.rows[: j + 1], self.first_seen, self.whole)


def _served(kept: KeptWindow | None, ts: datetime) -> KeptWindow | None:
    """What a kept window offers an event at `ts`: itself as the base to extend when the event is newer,
    else the window as it stood at the event's row, if it holds that row."""
    if kept is None or ts > kept.last_ts:
        return kept
    return kept.at(ts)


@dataclass
class _Read:
    """A window read in flight, and the coins `follow` saw an event of meanwhile."""

    mints: frozenset[str]
    touched: set[str] = field(default_factory=set)

    def followed(self, mint: str) -> None:
        if mint in self.mints:
            self.touched.add(mint)


def _numbers(row: MetricRow) -> list[float | int | None]:
    return [getattr(row, name) for name in NUMERIC_COLUMNS]


def _extend(base: KeptWindow | None, records: list[asyncpg.Record]) -> KeptWindow | None:
    """The window after `base` takes the newer rows `records` (oldest first); None if there is none."""
    if not records:
        return base
    fresh = np.array(  # None becomes NaN
        [[r["timestamp"].timestamp(), *(r[name] for name in NUMERIC_COLUMNS)] for r in records],
        dtype=np.float64,
    )
    rows = (*[None] * (len(records) - 1), metric_row(records[-1]))
    if base is None:
        return KeptWindow(fresh, rows, records[0]["first_seen"].timestamp(), len(records) < WINDOW_ROWS)
    if len(records) == WINDOW_ROWS:  # rows between the base and these may be left out: start anew
        return KeptWindow(fresh, rows, base.first_seen, whole=False)
    return base.extended(fresh, rows)
