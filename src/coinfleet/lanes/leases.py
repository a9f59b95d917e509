"""Leases: each model's lane runs in one process at a time, whichever of many shares the database.

A process that runs lanes is a worker: it announces itself in `coinfleet_workers` and renews that row
and its leases every third of a lease period. Every worker places the active models over the live
workers with the same pure function (`placement.place`), takes the leases of its own models that are
free, and gives back those placed elsewhere once their lanes have stopped. A worker that dies stops
renewing; its leases expire and the others take them with the next epoch. Taking a lease writes its
epoch into the model's cursor row, and a lane's batch moves the cursor only at its own epoch (the store
statement), so a worker that stalled past its lease and wakes up stores nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import asyncpg
import structlog

from coinfleet.db.outage import DATABASE_ERRORS
from coinfleet.db.sql import query
from coinfleet.errors import CoinfleetError
from coinfleet.lanes.placement import place
from coinfleet.models.registry import ModelRecord

log = structlog.get_logger(__name__)
#: worker rows whose heartbeat stopped this many lease periods ago are deleted
FORGET_AFTER_PERIODS = 100


@dataclass(frozen=True, kw_only=True, slots=True)
class Lease:
    """A model's lane held by this worker at an epoch."""

    model_id: int
    epoch: int


def new_worker_id() -> str:
    """A worker id unique over machines and restarts: host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseKeeper:
    """This worker's announcement and leases."""

    def __init__(
        self, pool: asyncpg.Pool, *, seconds: float, capacity: float, worker_id: str | None = None
    ) -> None:
        self._pool = pool
        self.seconds = seconds  #: a lease's period
        self.capacity = capacity
        self.worker_id = worker_id or new_worker_id()
        self._held: dict[int, Lease] = {}

    @property
    def held(self) -> Mapping[int, Lease]:
        """The leases this worker holds, by model id."""
        return self._held

    async def heartbeat(self) -> set[int]:
        """Renew this worker's row and leases; return the models whose lease was lost (taken over)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                query("renew_worker"),
                self.worker_id, socket.gethostname(), os.getpid(), self.capacity, self.seconds,
            )  # fmt: skip
            held = list(self._held.values())
            rows = await conn.fetch(
                query("renew_leases"),
                self.worker_id, [h.model_id for h in held], [h.epoch for h in held], self.seconds,
            )  # fmt: skip
            await conn.execute(query("forget_dead_workers"), FORGET_AFTER_PERIODS * self.seconds)
        renewed = {r["model_id"] for r in rows}
        # only a lease this heartbeat tried to renew can be lost: one taken while it ran (a lane starting
        # at the same moment) was not in `held`, and one taken again meanwhile has a newer epoch
        lost = {h.model_id for h in held if h.model_id not in renewed and self._held.get(h.model_id) == h}
        for model_id in lost:
            log.warning("lease_lost", worker=self.worker_id, model_id=model_id)
            del self._held[model_id]
        return lost

    async def mine(self, weights: Mapping[int, float]) -> set[int]:
        """The models (id → weight) placed on this worker among the live ones."""
        async with self._pool.acquire() as conn:
            workers = {r["id"]: r["capacity"] for r in await conn.fetch(query("live_workers"))}
        workers.setdefault(self.worker_id, self.capacity)  # alive by definition, even between heartbeats
        return {m for m, w in place(weights, workers).items() if w == self.worker_id}

    async def acquire(self, model_id: int) -> Lease | None:
        """Take the model's lease when it is free; None when another worker holds it."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(query("ensure_cursor"), model_id)
            epoch = await conn.fetchval(query("acquire_lease"), model_id, self.worker_id, self.seconds)
        if epoch is None:
            return None
        lease = Lease(model_id=model_id, epoch=epoch)
        self._held[model_id] = lease
        log.info("lease_acquired", worker=self.worker_id, model_id=model_id, epoch=epoch)
        return lease

    async def release(self, model_id: int) -> None:
        """Give the model's lease back (its lane has stopped) so that its new owner need not wait."""
        lease = self._held.pop(model_id, None)
        if lease is not None:
            async with self._pool.acquire() as conn:
                await conn.execute(query("release_lease"), self.worker_id, model_id, lease.epoch)
            log.info("lease_released", worker=self.worker_id, model_id=model_id, epoch=lease.epoch)

    async def leave(self) -> None:
        """Release every lease and remove this worker's row: the others take over at once."""
        async with self._pool.acquire() as conn:
            await conn.execute(query("leave_worker"), self.worker_id)
        self._held.clear()
        log.info("worker_left", worker=self.worker_id)


class ModelLeases:
    """A supervisor's view of its leases: with no LeaseKeeper every model is this process's to run;
    failures to hand a lease back are logged (it expires instead)."""

    def __init__(self, keeper: LeaseKeeper | None) -> None:
        self.keeper = keeper

    async def placed_here(self, models: dict[int, ModelRecord]) -> dict[int, ModelRecord]:
        """The active models this process should run: all, or with leases those placed on it."""
        if self.keeper is None:
            return models
        mine = await self.keeper.mine({m.id: m.settings.weight for m in models.values()})
        return {model_id: model for model_id, model in models.items() if model_id in mine}

    def holds(self, model_id: int) -> bool:
        """Whether this process may run the model now."""
        return self.keeper is None or model_id in self.keeper.held

    def epoch(self, model_id: int) -> int | None:
        """The epoch a lane of the model stores at (None: no leases, not fenced)."""
        return None if self.keeper is None else self.keeper.held[model_id].epoch

    async def take(self, model_id: int) -> bool:
        """Whether this process may run the model: no leases, or its lease is held or taken now."""
        if self.holds(model_id):
            return True
        assert self.keeper is not None
        return await self.keeper.acquire(model_id) is not None

    async def release(self, model_id: int) -> None:
        """Hand the model's lease back."""
        if self.keeper is not None:
            try:
                await self.keeper.release(model_id)
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:  # it expires instead
                log.warning("release_failed", model_id=model_id, error=str(exc))

    async def renew_forever(self, on_lost: Callable[[], None]) -> None:
        """Heartbeat every third of a lease period; `on_lost` when a lease was lost."""
        if self.keeper is None:
            return
        while True:
            try:
                if await self.keeper.heartbeat():
                    on_lost()
            except (asyncpg.PostgresError, CoinfleetError, *DATABASE_ERRORS) as exc:
                log.warning("heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.keeper.seconds / 3)

    async def leave(self) -> None:
        """Hand every lease back at once (the others need not wait for them to expire)."""
        if self.keeper is not None:
            try:
                await self.keeper.leave()
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:
                log.warning("leave_failed", error=str(exc))
