"""Where a lane stands in the event stream: the last event it stored, and the scan cache its rules read.

Both are loaded from the database before a lane's first batch and again after any failure that was not
the model's: the database may have lost the lane's last commits (a crash before they were flushed)."""

from __future__ import annotations

import asyncpg
import structlog

from coinfleet.events.cursor import Cursor, load_cursor
from coinfleet.lanes.rules import CoinState
from coinfleet.lanes.store import load_states
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings

log = structlog.get_logger(__name__)
NO_CURSOR = Cursor(tx=0, seq=0)  #: before the lane's first load


class LanePosition:
    """A lane's cursor and, while the model's rules read it, its scan cache (per coin)."""

    def __init__(self, pool: asyncpg.Pool, model: ModelRecord) -> None:
        self._pool = pool
        self._model_id = model.id
        self._name = model.name
        self.cursor = NO_CURSOR  #: the last event the lane has stored
        self.states: dict[str, CoinState] = {}  #: the scan cache, when kept
        self.keeps_scan_cache = False  #: `states` is loaded and kept (the model's rules read it)
        self._stale = True  #: load the cursor (and scan cache) from the database before the next batch

    def mark_stale(self) -> None:
        """Load both again before the next batch (the database may have lost the lane's last commits)."""
        self._stale = True

    async def refresh(self, settings: ModelSettings) -> None:
        """Before a batch: load what is stale, and keep the scan cache exactly while the rules read it."""
        if self._stale:
            await self._load()
        await self._follow(settings)

    def advance(self, cursor: Cursor, states: dict[str, CoinState]) -> None:
        """A batch up to `cursor` was stored with these scan-cache changes."""
        self.states.update(states)
        self.cursor = cursor

    async def _load(self) -> None:
        """(Re)load the stored cursor, and with it the scan cache when the lane keeps one: after an error
        either may lie behind what this lane last stored (a crash lost commits not flushed yet)."""
        async with self._pool.acquire() as conn:
            cursor = await load_cursor(conn, self._model_id)
        if cursor != self.cursor and self.cursor != NO_CURSOR:
            log.warning("cursor_reloaded", model=self._name, was=str(self.cursor), now=str(cursor))
        self.cursor = cursor
        self.keeps_scan_cache = False  # `_follow` loads it again if the rules read it
        self._stale = False

    async def _follow(self, settings: ModelSettings) -> None:
        """Keep the scan cache while the model's rules read it; when they start to, load it (complete)."""
        reads = settings.reads_scan_cache
        if reads and not self.keeps_scan_cache:
            async with self._pool.acquire() as conn:
                self.states = await load_states(conn, self._model_id)
        elif not reads:
            self.states = {}
        self.keeps_scan_cache = reads
