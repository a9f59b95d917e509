"""Starts one lane per active model, keeps them in step with the registry, and prunes old events."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
from dataclasses import dataclass

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.constants import EVENTS_CHANNEL, LEASES_CHANNEL, MODELS_CHANNEL
from coinfleet.db.database import OwnConnection
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.errors import CoinfleetError
from coinfleet.events.cursor import events_behind, prune_events
from coinfleet.events.feed import Notifier
from coinfleet.events.log import EventLog
from coinfleet.features.cache import ObservationService
from coinfleet.lanes import telemetry
from coinfleet.lanes.factory import ProcessRunnerFactory, RunnerFactory, inline_runner, runner_limits
from coinfleet.lanes.group_commit import GroupCommit
from coinfleet.lanes.lane import Lane, LaneConfig, LaneServices
from coinfleet.lanes.leases import LeaseKeeper
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord
from coinfleet.models.sandbox import SandboxLimits
from coinfleet.runners.hogs import HogGate
from coinfleet.runners.process import ProcessRunner
from coinfleet.runners.protocol import Runner
from coinfleet.runners.slots import FairSlots

log = structlog.get_logger(__name__)
#: a lane's own connection runs the same few statements over and over, whose plans do not depend on
#: their parameters (arrays of a batch's rows): planned once, not per batch (custom plans doubled
#: PostgreSQL's CPU per one-row batch: 150 → 345 µs). Its commits do not wait for the WAL flush: a
#: server crash may lose the last fraction of a second of batches, each whole (predictions, cursor and
#: outbox rows commit together), and the lane scores those events again; nothing is inconsistent.
LANE_SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "synchronous_commit": "off"}
#: group-commit writes that may run at once: a lane that finishes while one runs need not wait for it
GROUP_WRITERS = 2
#: the garbage collector's thresholds in a serving process: a lane batch makes thousands of short-lived
#: objects that reference counting frees; with the default 700, young collections walked them mid-batch
#: (7 % of the serving process at 30,000 predictions/s)
GC_THRESHOLDS = (50_000, 20, 100)


@dataclass
class _Running:
    lane: Lane
    task: asyncio.Task[None]
    runner: Runner


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
        hogs: HogGate | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._settings = settings
        self.leases = leases
        self._notifier = Notifier(dsn, (EVENTS_CHANNEL, MODELS_CHANNEL, LEASES_CHANNEL))
        self._observations = ObservationService(pool)
        self._events = EventLog(pool, follower=self._observations)
        #: shared with a given runner_factory's process runners, which register their hogs in it
        self.hogs = hogs or HogGate()
        self._runner_factory = runner_factory or self._default_factory()
        self.group = GroupCommit(
            [OwnConnection(dsn, server_settings=LANE_SERVER_SETTINGS) for _ in range(GROUP_WRITERS)]
        )
        self._running: dict[int, _Running] = {}
        #: lanes being started (compiling, loading): each on its own, so a slow one delays no other
        self._starting: dict[int, tuple[int, asyncio.Task[None]]] = {}  #: model id → (version, task)
        self._stop = asyncio.Event()
        self._outage = Outage("supervisor")
        self.lane_restarts = 0  #: lanes that died with an error and were started again
        self._models_signal = self._notifier.subscribe(MODELS_CHANNEL)  #: also set by `stop`, leases
        self._notifier.subscribe(LEASES_CHANNEL, self._models_signal)
        self.slots = FairSlots(
            settings.execution_slots or os.cpu_count() or 1, quantum=settings.slot_quantum_seconds
        )
        self._lane_services = LaneServices(
            pool=pool,
            observations=self._observations,
            events=self._events,
            slots=self.slots,
            hogs=self.hogs,
            group=self.group,
        )

    def _default_factory(self) -> RunnerFactory:
        if self._settings.runner == "inline":
            return inline_runner
        return ProcessRunnerFactory(
            pool=self._pool,
            observations=self._observations,
            compile_onnx=self._settings.runner_compile_onnx,
            hogs=self.hogs,
            compile_limits=SandboxLimits(
                timeout_seconds=self._settings.model_check_timeout_seconds,
                memory_limit_mb=self._settings.model_check_memory_mb,
            ),
        )

    @property
    def lanes(self) -> list[Lane]:
        """The running lanes, in model id order."""
        return [self._running[k].lane for k in sorted(self._running)]

    def runner_pids(self) -> list[int | None]:
        """The process ids of the lanes' runner processes (None: inline, or not running)."""
        return [r.runner.pid if isinstance(r.runner, ProcessRunner) else None for r in self._running.values()]

    def stop(self) -> None:
        """Ask `run` to stop all lanes and return."""
        self._stop.set()
        self._models_signal.set()

    async def run(self) -> None:
        """Run lanes until `stop`; follow model changes live."""
        gc.set_threshold(*GC_THRESHOLDS)
        await self._notifier.start()
        pruner = asyncio.create_task(self._prune_forever())
        renewer = asyncio.create_task(self._renew_forever()) if self.leases is not None else None
        try:
            while not self._stop.is_set():
                wait = await self._sync_or_back_off()
                await self._models_signal.wait(wait)
        finally:
            pruner.cancel()
            if renewer is not None:
                renewer.cancel()
            self.hogs.release()
            await self._stop_all()
            await self._leave()
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
        async with self._pool.acquire() as conn:
            models = {m.id: m for m in await registry.list_models(conn) if m.status == "active"}
        models = await self._placed_here(models)
        for broken in [m for m in models.values() if m.settings_error]:
            del models[broken.id]  # it fails alone: the others keep scoring
            await self._quarantine(broken, broken.settings_error or "")
        await self._restart_dead_lanes()
        for model_id in list(self._running):
            running = self._running[model_id]
            model = models.get(model_id)
            if model is None or model.version != running.lane.model.version or self._fenced(running):
                await self._stop_lane(model_id)
            else:
                running.lane.update_model(model)
                if isinstance(running.runner, ProcessRunner):
                    running.runner.set_limits(runner_limits(model.settings))
        for model_id, (version, task) in list(self._starting.items()):
            if model_id not in models or models[model_id].version != version:
                task.cancel()
                self._starting.pop(model_id)
        for model_id, model in models.items():
            if model_id not in self._running and model_id not in self._starting:
                task = asyncio.create_task(self._start_lane(model), name=f"start:{model.name}")
                self._starting[model_id] = (model.version, task)

    async def _placed_here(self, models: dict[int, ModelRecord]) -> dict[int, ModelRecord]:
        """The active models this process should run: all, or with leases those placed on it."""
        if self.leases is None:
            return models
        mine = await self.leases.mine({m.id: m.settings.weight for m in models.values()})
        return {model_id: model for model_id, model in models.items() if model_id in mine}

    def _fenced(self, running: _Running) -> bool:
        """Whether the lane lost its lease: a batch was refused, or a heartbeat could not renew it."""
        lost = self.leases is not None and running.lane.model.id not in self.leases.held
        return lost or running.lane.fenced

    async def _restart_dead_lanes(self) -> None:
        """Forget lanes whose task ended by itself (an error escaped, it quarantined its model, or it
        was fenced) and hand back their leases: `sync` starts them again, taking the lease anew, if
        their model is still active and placed here."""
        for model_id, running in list(self._running.items()):
            if not running.task.done():
                continue
            del self._running[model_id]
            error = None if running.task.cancelled() else running.task.exception()
            if error is not None:
                name = running.lane.model.name
                log.error("lane_died", model=name, error=f"{type(error).__name__}: {error}")
                self.lane_restarts += 1
            await self._release(model_id)

    def _lane_ended(self, task: asyncio.Task[None]) -> None:
        """Wake `run` when a lane task ends without being asked to (a fenced lane too), so `sync`
        restarts it at once."""
        if not self._stop.is_set():
            self._models_signal.set()

    async def _start_lane(self, model: ModelRecord) -> None:
        """Take the model's lease (with leases), compile and load the model, then run its lane; runs as a
        task of its own (`_starting`)."""
        try:
            if not await self._take_lease(model.id):
                return  # its previous owner still holds it: tried again at the next sync
            async with self._pool.acquire() as conn:
                artifact = await registry.load_artifact(conn, model.id)
            made = self._runner_factory(model, artifact)
            runner = await made if inspect.isawaitable(made) else made
        except DATABASE_ERRORS:
            raise  # not the model's fault: `run` tries again once the database is back
        except (CoinfleetError, ValueError) as exc:
            await self._quarantine(model, f"cannot load model: {exc}")
            await self._release(model.id)
            return
        except asyncio.CancelledError:  # no longer active, or placed elsewhere now
            await self._release(model.id)
            raise
        finally:
            if self._starting.get(model.id, (None,))[0] == model.version:
                self._starting.pop(model.id)
        if self._stop.is_set() or not self._holds(model.id):
            await runner.close()
            return
        self._run_lane(model, runner)
        # what is alive now (libraries imported for the models, loaded models) lives as long as the
        # process: frozen, full collections skip it (they walked ~190,000 such objects: 110 ms pauses)
        gc.freeze()
        self._models_signal.set()  # a sync now passes on settings changed while it started

    async def _take_lease(self, model_id: int) -> bool:
        """Whether this process may run the model: no leases, or its lease is held or taken now."""
        if self._holds(model_id):
            return True
        assert self.leases is not None
        return await self.leases.acquire(model_id) is not None

    def _holds(self, model_id: int) -> bool:
        return self.leases is None or model_id in self.leases.held

    async def _release(self, model_id: int) -> None:
        if self.leases is not None:
            try:
                await self.leases.release(model_id)
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:  # it expires instead
                log.warning("release_failed", model_id=model_id, error=str(exc))

    def _run_lane(self, model: ModelRecord, runner: Runner) -> None:
        lane = Lane(
            model=model,
            runner=runner,
            connection=OwnConnection(self._dsn, server_settings=LANE_SERVER_SETTINGS),
            signal=self._notifier.subscribe(EVENTS_CHANNEL),
            services=self._lane_services,
            config=LaneConfig.from_settings(self._settings),
            on_quarantine=self._quarantine,
            epoch=None if self.leases is None else self.leases.held[model.id].epoch,
        )
        task = asyncio.create_task(lane.run(), name=f"lane:{model.name}")
        task.add_done_callback(self._lane_ended)
        self._running[model.id] = _Running(lane=lane, task=task, runner=runner)
        log.info("lane_started", model=model.name, version=model.version)

    async def _quarantine(self, model: ModelRecord, reason: str) -> None:
        """Mark the model quarantined; `sync` then stops its lane, and `models resume` restarts it."""
        log.error("model_quarantined", model=model.name, reason=reason)
        async with self._pool.acquire() as conn:
            await registry.set_status(conn, model.name, "quarantined", reason)

    async def _stop_lane(self, model_id: int) -> None:
        """Stop the lane after its current batch; it is listed among `lanes` until then."""
        running = self._running[model_id]
        running.lane.stop()
        with contextlib.suppress(Exception):
            await running.task
        del self._running[model_id]
        log.info("lane_stopped", model=running.lane.model.name)
        await self._release(model_id)

    async def _stop_all(self) -> None:
        starting = [task for _, task in self._starting.values()]
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        for model_id in list(self._running):
            await self._stop_lane(model_id)

    async def all_lanes_started(self) -> bool:
        """True when every active model placed here has a running lane (what readiness asks)."""
        async with self._pool.acquire() as conn:
            active = {m.id: m for m in await registry.list_models(conn) if m.status == "active"}
        return set(await self._placed_here(active)) <= set(self._running)

    async def _renew_forever(self) -> None:
        """Heartbeat every third of a lease period; a lost lease wakes `sync`, which stops its lane."""
        assert self.leases is not None
        while True:
            try:
                if await self.leases.heartbeat():
                    self._models_signal.set()
            except (asyncpg.PostgresError, CoinfleetError, *DATABASE_ERRORS) as exc:
                log.warning("heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.leases.seconds / 3)

    async def _leave(self) -> None:
        """Hand every lease back at once (the others need not wait for them to expire)."""
        if self.leases is not None:
            try:
                await self.leases.leave()
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:
                log.warning("leave_failed", error=str(exc))

    async def refresh_lag(self) -> None:
        """Recount how many events each lane is behind."""
        async with self._pool.acquire() as conn:
            for lane in self.lanes:
                lane.stats.lag_events = await events_behind(conn, lane.cursor)
                telemetry.LAG_EVENTS.labels(lane.model.name).set(lane.stats.lag_events)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.prune_interval_seconds)
            try:
                async with self._pool.acquire() as conn:
                    pruned = await prune_events(conn)
                log.debug("events_pruned", count=pruned)
            except (asyncpg.PostgresError, *DATABASE_ERRORS) as exc:
                log.warning("prune_failed", error=str(exc))
