"""The shared feature service: each coin's window is read and turned into features once for all lanes."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np

from coinfleet.features.kept import KeptWindow, KeptWindows, Key
from coinfleet.features.spec import FEATURES, WindowBatch, compute_batch
from coinfleet.metrics import MetricRow

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
    """Builds Observations for (coin, time) keys, caching them so every lane shares the work: a key asked
    for while another lane's read of it is in flight waits for that read. The windows the features are
    computed from come from `windows` (kept.py), which reads only the rows it does not hold."""

    def __init__(
        self, pool: asyncpg.Pool, *, cache_size: int = 50_000, coin_cache_size: int = 20_000
    ) -> None:
        #: the kept coin windows; the process's EventLog tells them every event (`follower`)
        self.windows = KeptWindows(pool, size=coin_cache_size)
        self._cache: OrderedDict[Key, Observation | None] = OrderedDict()
        self._pending: dict[Key, asyncio.Future[Observation | None]] = {}
        self._cache_size = cache_size

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
        return observations(keys, await self.windows.windows(keys))

    def _remember(self, key: Key, observation: Observation | None) -> None:
        self._cache[key] = observation
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def observations(keys: Sequence[Key], windows: Sequence[KeptWindow | None]) -> dict[Key, Observation | None]:
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
