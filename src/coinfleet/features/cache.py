"""The shared feature service: each coin's window is read and turned into features once for all lanes."""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg
import numpy as np

from coinfleet.db.sql import query
from coinfleet.events.cursor import Event
from coinfleet.features.spec import FEATURES, WindowBatch, compute_batch
from coinfleet.features.window import WINDOW_ROWS, FloatArray
from coinfleet.feed.writer import metric_row
from coinfleet.metrics import NUMERIC_COLUMNS, MetricRow

Key = tuple[str, datetime]
#: every feature the catalogue knows, in one fixed order; lanes pick their columns from it
ALL_FEATURES: tuple[str, ...] = tuple(FEATURES)
#: rows a kept coin window holds: the newest window and as many rows before it, so that a lane up to
#: WINDOW_ROWS of the coin's rows behind the head is served from memory too
KEPT_ROWS = 2 * WINDOW_ROWS


@dataclass(frozen=True, kw_only=True, slots=True)
class Observation:
    """The metric row at an event's time and every catalogue feature computed from rows ≤ that time."""

    row: MetricRow
    features: np.ndarray  #: float64, in ALL_FEATURES order


def feature_indices(names: Sequence[str]) -> np.ndarray:
    """Column positions of a model's features in an Observation's vector."""
    position = {name: i for i, name in enumerate(ALL_FEATURES)}
    missing = [n for n in names if n not in position]
    if missing:
        raise ValueError(f"features coinfleet cannot compute: {', '.join(missing)}")
    return np.array([position[n] for n in names], dtype=np.intp)


class ObservationService:
    """Builds Observations for (coin, time) keys, caching them so every lane shares the work.

    It also keeps each recently seen coin's newest window, so that a coin's next event reads only the
    rows that are new since then, not its whole window again. A row that arrives late (its time at or
    before a kept window's newest time) would be missed that way: `follow` is told every event once,
    in stream order, and drops the window of a coin that got one.

    `follow` also gets each event's row; it appends it to the coin's kept window when that window is
    known to miss no row after its newest time — the read that made it saw no later row of the coin,
    and no event of the coin was followed while it ran — so an event at the head is served with no
    read at all. Every later row of such a coin comes through `follow` in stream order: a newer one
    extends the window, an older one (late) drops it. A kept window holds up to KEPT_ROWS rows, so an
    event of a coin that has had newer rows since (a lane behind the head) is served from it as well.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, cache_size: int = 50_000, coin_cache_size: int = 20_000
    ) -> None:
        self._pool = pool
        self._cache: OrderedDict[Key, Observation | None] = OrderedDict()
        self._pending: dict[Key, asyncio.Future[Observation | None]] = {}
        self._cache_size = cache_size
        self._coins: OrderedDict[str, _CoinWindow] = OrderedDict()
        self._coin_cache_size = coin_cache_size
        self._reads: list[_Read] = []  #: window reads in flight
        self.fetched = 0  #: keys read from the database (the rest came from the cache or kept windows)
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

    async def observe(self, keys: Sequence[Key]) -> list[Observation | None]:
        """Observations for the keys, in order; None where the metric row does not exist."""
        found: dict[Key, Observation | None] = {}
        waiting: dict[Key, asyncio.Future[Observation | None]] = {}
        wanted: list[Key] = []
        for key in dict.fromkeys(keys):
            if key in self._cache:
                found[key] = self._cache[key]
            elif key in self._pending:
                waiting[key] = self._pending[key]
            else:
                wanted.append(key)
        if wanted:
            found.update(await self._load_shared(wanted))
        for key, future in waiting.items():
            found[key] = await asyncio.shield(future)
        return [found[key] for key in keys]

    async def _load_shared(self, keys: list[Key]) -> dict[Key, Observation | None]:
        """Load keys while letting concurrent callers wait for the same keys instead of reloading."""
        loop = asyncio.get_running_loop()
        futures = {key: loop.create_future() for key in keys}
        for future in futures.values():
            # a failure with nobody waiting must not be reported as "never retrieved"
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.update(futures)
        try:
            loaded = await self._load(keys)
        except Exception as exc:
            for future in futures.values():
                future.set_exception(exc)
            raise
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
        finally:
            for key in keys:
                self._pending.pop(key, None)
        for key, observation in loaded.items():
            self._remember(key, observation)
            futures[key].set_result(observation)
        return loaded

    async def _load(self, keys: list[Key]) -> dict[Key, Observation | None]:
        # a kept window holding the key's row serves it as it stood then; one ending earlier is the base
        # that the rows after it extend; otherwise the key's window is read whole
        windows = [_served(self._coins.get(mint), t) for mint, t in keys]
        wanted = [
            i for i, ((_, t), k) in enumerate(zip(keys, windows, strict=True)) if k is None or k.last_ts != t
        ]
        if wanted:
            read = await self._read([keys[i] for i in wanted], [windows[i] for i in wanted])
            for i, window in zip(wanted, read, strict=True):
                windows[i] = window
        return observations(keys, windows)

    async def _read(self, keys: list[Key], kept: list[_CoinWindow | None]) -> list[_CoinWindow | None]:
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

    def _keep(self, mint: str, window: _CoinWindow) -> None:
        kept = self._coins.get(mint)
        if kept is None or window.last_ts > kept.last_ts:
            self._coins[mint] = window
            self._coins.move_to_end(mint)
            while len(self._coins) > self._coin_cache_size:
                self._coins.popitem(last=False)

    def _remember(self, key: Key, observation: Observation | None) -> None:
        self._cache[key] = observation
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _CoinWindow:
    """A coin's last rows (up to KEPT_ROWS) at or before `last_ts`, oldest first."""

    values: FloatArray  #: [rows, len(WINDOW_COLUMNS)]: `t`, then every numeric column
    #: the MetricRow of each row of `values` where it is known (rows that came from follow, and the
    #: newest row of a read); an event is served from its row only
    rows: tuple[MetricRow | None, ...]
    first_seen: float  #: epoch seconds
    whole: bool  #: `values` starts at the coin's first row
    #: every row of the coin after `last_ts` will reach `follow` (see ObservationService)
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

    def appended(self, row: MetricRow) -> _CoinWindow:
        """The window with a newer row at its end."""
        fresh = np.array([[row.timestamp.timestamp(), *_numbers(row)]], dtype=np.float64)
        return self.extended(fresh, (row,))

    def extended(self, values: FloatArray, rows: tuple[MetricRow | None, ...]) -> _CoinWindow:
        """The window with newer rows at its end; the oldest fall out past KEPT_ROWS."""
        joined = np.concatenate((self.values, values))
        whole = self.whole and len(joined) <= KEPT_ROWS
        kept_rows = (*self.rows, *rows)[-KEPT_ROWS:]
        return _CoinWindow(joined[-KEPT_ROWS:], kept_rows, self.first_seen, whole, self.complete)

    def at(self, ts: datetime) -> _CoinWindow | None:
        """The window as it stood when its row at `ts` was the newest; None unless it holds that row
        and a whole window's rows up to it (or every row of the coin up to it)."""
        if ts == self.last_ts:
            return self
        j = int(np.searchsorted(self.values[:, 0], ts.timestamp()))
        row = self.rows[j] if j < len(self.rows) else None
        if row is None or row.timestamp != ts or (j < WINDOW_ROWS - 1 and not self.whole):
            return None
        return _CoinWindow(self.values[: j + 1], self.rows[: j + 1], self.first_seen, self.whole)


def _served(kept: _CoinWindow | None, ts: datetime) -> _CoinWindow | None:
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


def _extend(base: _CoinWindow | None, records: list[asyncpg.Record]) -> _CoinWindow | None:
    """The window after `base` takes the newer rows `records` (oldest first); None if there is none."""
    if not records:
        return base
    fresh = np.array(  # None becomes NaN
        [[r["timestamp"].timestamp(), *(r[name] for name in NUMERIC_COLUMNS)] for r in records],
        dtype=np.float64,
    )
    rows = (*[None] * (len(records) - 1), metric_row(records[-1]))
    if base is None:
        return _CoinWindow(fresh, rows, records[0]["first_seen"].timestamp(), len(records) < WINDOW_ROWS)
    if len(records) == WINDOW_ROWS:  # rows between the base and these may be left out: start anew
        return _CoinWindow(fresh, rows, base.first_seen, whole=False)
    return base.extended(fresh, rows)


def observations(keys: Sequence[Key], windows: Sequence[_CoinWindow | None]) -> dict[Key, Observation | None]:
    """Features of many windows at once: the kept tables go into one batch as they are, so the
    features of every window are computed in one vectorised pass."""
    found: dict[Key, Observation | None] = dict.fromkeys(keys)
    built = [(key, window) for key, window in zip(keys, windows, strict=True) if window is not None]
    if not built:
        return found
    tables, first_seen = [window.values for _, window in built], [window.first_seen for _, window in built]
    matrix = compute_batch(WindowBatch.of_tables(tables, first_seen), ALL_FEATURES)
    for (key, window), features in zip(built, matrix, strict=True):
        found[key] = Observation(row=window.last_row, features=features)
    return found
