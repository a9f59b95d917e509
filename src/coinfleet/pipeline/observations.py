"""The shared feature service: each coin's window is read and turned into features once for all lanes."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from coinfleet.db.sql import query
from coinfleet.features.spec import FEATURES, compute_matrix
from coinfleet.features.window import WINDOW_ROWS, CoinWindow, window_from_arrays
from coinfleet.feed.writer import metric_row
from coinfleet.metrics import NUMERIC_COLUMNS, MetricRow

Key = tuple[str, datetime]
#: every feature the catalogue knows, in one fixed order; lanes pick their columns from it
ALL_FEATURES: tuple[str, ...] = tuple(FEATURES)


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
    """Builds Observations for (coin, time) keys, caching them so every lane shares the work."""

    def __init__(self, pool: asyncpg.Pool, *, cache_size: int = 200_000) -> None:
        self._pool = pool
        self._cache: OrderedDict[Key, Observation | None] = OrderedDict()
        self._pending: dict[Key, asyncio.Future[Observation | None]] = {}
        self._cache_size = cache_size
        self.fetched = 0  #: keys read from the database (the rest came from the cache)

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
        async with self._pool.acquire() as conn:
            records = await conn.fetch(
                query("fetch_windows"), [k[0] for k in keys], [k[1] for k in keys], WINDOW_ROWS
            )
        self.fetched += len(keys)
        grouped: dict[int, list[asyncpg.Record]] = {}
        for record in records:
            grouped.setdefault(record["i"], []).append(record)
        return observations(keys, [grouped.get(i, []) for i in range(1, len(keys) + 1)])

    def _remember(self, key: Key, observation: Observation | None) -> None:
        self._cache[key] = observation
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def observations(
    keys: Sequence[Key], windows: Sequence[list[asyncpg.Record]]
) -> dict[Key, Observation | None]:
    """Features of many windows at once (rows oldest → newest, the last is the event's own row).

    All windows' rows become one array per column first, so the per-row work is a list read, and the
    features of every window are computed in one vectorised pass.
    """
    found: dict[Key, Observation | None] = dict.fromkeys(keys)
    flat = [record for records in windows for record in records]
    if not flat:
        return found
    arrays = {"t": np.array([r["timestamp"].timestamp() for r in flat], dtype=np.float64)}
    for name in NUMERIC_COLUMNS:
        arrays[name] = np.array([r[name] for r in flat], dtype=np.float64)  # None becomes NaN
    built: list[tuple[Key, asyncpg.Record, CoinWindow]] = []
    start = 0
    for key, records in zip(keys, windows, strict=True):
        if records:
            first_seen = records[0]["first_seen"].timestamp()
            built.append(
                (key, records[-1], window_from_arrays(arrays, first_seen, start, start + len(records)))
            )
        start += len(records)
    matrix = compute_matrix([window for _, _, window in built], ALL_FEATURES)
    for (key, last, _), features in zip(built, matrix, strict=True):
        found[key] = Observation(row=metric_row(last), features=features)
    return found
