"""Starts one lane per active model, keeps them in step with the registry, and prunes old events."""

from __future__ import annotations

import asyncio
import gc
import os

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.constants import EVENTS_CHANNEL, LEASES_CHANNEL, MODELS_CHANNEL
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.events.cursor import events_behind, prune_events
from coinfleet.events.log import EventLog
from coinfleet.events.notifier import Notifier
from coinfleet.features.cache import ObservationService
from coinfleet.lanes import telemetry
from coinfleet.lanes.factory import RunnerFactory, default_runner_factory
from coinfleet.lanes.group_commit import GroupCommit
from coinfleet.lanes.lane import Lane, LaneServices
from coinfleet.lanes.leases import LeaseKeeper, ModelLeases
from coinfleet.lanes.running import RunningLanes
from coinfleet.lanes.starter import LaneStarter, lane_connection
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.hogs import HogPolicy
from coinfleet.runners.slots import FairSlots

log = structlog.get_logger(__name__)
#: group-commit writes that may run at once: a lane that finishes while one runs need not wait for it
GROUP_WRITERS = 2


class Supervisor:
    """Owns the lanes of this process: of every active model, or with a LeaseKeeper of the models
    placed on this worker whose leases it holds."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        settings: Settings,
        runner_factory: RunnerFactory | None = None,
        hogs: HogPolicy | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self.leases = leases
        self._leases = ModelLeases(leases)
        notifier = self._notifier = Notifier(dsn, (EVENTS_CHANNEL, MODELS_CHANNEL, LEASES_CHANNEL))
        observations = ObservationService(pool)
        #: shared with a given runner_factory's process runners, which register their hogs in it
        self.hogs = hogs or HogPolicy()
        self.group = GroupCommit([lane_connection(dsn, settings) for _ in range(GROUP_WRITERS)])
        self.slots = FairSlots(
            settings.execution_slots or os.cpu_count() or 1, quantum=settings.slot_quantum_seconds
        )
        services = LaneServices(
            pool=pool,
            observations=observations,
            events=EventLog(pool, follower=observations.windows),
            slots=self.slots,
            hogs=self.hogs,
            group=self.group,
        )
        self._starter = LaneStarter(
            dsn=dsn,
            settings=settings,
            notifier=notifier,
            services=services,
            runner_factory=runner_factory or default_runner_factory(settings, pool, observations, self.hogs),
            leases=self._leases,
        )
        self._lanes = RunningLanes(self._leases, self._lane_ended)
        self._stop = asyncio.Event()
        self._outage = Outage("supervisor")
        self._models_signal = notifier.subscribe(MODELS_CHANNEL)  #: also set by `stop`, leases
        notifier.subscribe(LEASES_CHANNEL, self._models_signal)

    @property
    def lanes(self) -> list[Lane]:
        """The running lanes, in model id order."""
        return self._lanes.lanes()

    @property
    def lane_restarts(self) -> int:
        """Lanes that died with an error and were started again."""
        return self._lanes.restarts

    def runner_pids(self) -> list[int | None]:
        """The process ids of the lanes' runner processes (None: inline, or not running)."""
        return self._lanes.runner_pids()

    def stop(self) -> None:
        """Ask `run` to stop all lanes and return."""
        self._stop.set()
        self._models_signal.set()

    async def run(self) -> None:
        """Run lanes until `stop`; follow model changes live."""
        gc.set_threshold(*self._settings.gc_thresholds)
        await self._notifier.start()
        pruner = asyncio.create_task(prune_forever(self._pool, self._settings.prune_interval_seconds))
        renewer = asyncio.create_task(self._leases.renew_forever(self._models_signal.set))
        try:
            while not self._stop.is_set():
                wait = await self._sync_or_back_off()
                await self._models_signal.wait(wait)
        finally:
            pruner.cancel()
            renewer.cancel()
            self.hogs.release()
            await self._lanes.stop_all()
            await self._leases.leave()
            await self.group.close()
            await self._notifier.close()

    async def _sync_or_back_off(self) -> float:
        """`sync`; while the database is away, the growing pause before the next try (lanes keep going
        on their own and ride out the outage themselves)."""
        try:
            await self.sync()
        except DATABASE_ERRORS as exc:
            return self._outage.failed(exc)
        self._outage.succeeded()
        return self._settings.poll_interval_seconds

    async def sync(self) -> None:
        """Start lanes for newly active models, stop those no longer active, pass on new settings."""
        models = await self._active_here()
        for broken in [m for m in models.values() if m.settings_error]:
            del models[broken.id]  # it fails alone: the others keep scoring
            await self._starter.quarantine(broken, broken.settings_error or "")
        await self._lanes.update(models)
        for model_id, model in models.items():
            if not self._lanes.known(model_id):
                starting = self._starter.start(
                    model, self._lanes, stopping=self._stop, wake=self._models_signal.set
                )
                self._lanes.start(model, starting)

    async def _active_here(self) -> dict[int, ModelRecord]:
        """The active models, by id, that run here (all of them without leases)."""
        async with self._pool.acquire() as conn:
            active = {m.id: m for m in await registry.list_models(conn) if m.status == "active"}
        return await self._leases.placed_here(active)

    def _lane_ended(self, task: asyncio.Task[None]) -> None:
        """Wake `run` when a lane task ends without being asked to (a fenced lane too), so `sync`
        restarts it at once."""
        if not self._stop.is_set():
            self._models_signal.set()

    async def all_lanes_started(self) -> bool:
        """True when every active model placed here has a running lane (what readiness asks)."""
        return set(await self._active_here()) <= set(self._lanes.running)

    async def refresh_lag(self) -> None:
        """Recount how many events each lane is behind."""
        async with self._pool.acquire() as conn:
            for lane in self.lanes:
                lane.stats.lag_events = await events_behind(conn, lane.cursor)
                telemetry.LAG_EVENTS.labels(lane.model.name).set(lane.stats.lag_events)


async def prune_forever(pool: asyncpg.Pool, interval_seconds: float) -> None:
    """Delete events every lane has passed, every `interval_seconds`, until cancelled."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            async with pool.acquire() as conn:
                pruned = await prune_events(conn)
            log.debug("events_pruned", count=pruned)
        except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:
            log.warning("prune_failed", error=str(exc))
