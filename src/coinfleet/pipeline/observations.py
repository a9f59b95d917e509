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
from coinfleet.features.spec import FEATURES, compute_features
from coinfleet.features.window import WINDOW_ROWS, window_from_rows
from coinfleet.feed.writer import metric_row
from coinfleet.metrics import MetricRow

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
        return {key: _observation(grouped.get(i, [])) for i, key in enumerate(keys, start=1)}

    def _remember(self, key: Key, observation: Observation | None) -> None:
        self._cache[key] = observation
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _observation(records: list[asyncpg.Record]) -> Observation | None:
    """Features from one window (rows oldest → newest, the last is the event's own row)."""
    if not records:
        return None
    rows = [metric_row(r) for r in records]
    window = window_from_rows(rows, records[0]["first_seen"])
    return Observation(row=rows[-1], features=compute_features(window, ALL_FEATURES))
