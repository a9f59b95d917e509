"""Brings up one model's lane: its lease, its artifact, its runner (compiled and loaded), the lane."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.constants import EVENTS_CHANNEL
from coinfleet.db.database import OwnConnection
from coinfleet.db.outage import DATABASE_ERRORS
from coinfleet.errors import CoinfleetError
from coinfleet.events.notifier import Notifier
from coinfleet.lanes.factory import RunnerFactory
from coinfleet.lanes.lane import Lane, LaneConfig, LaneServices
from coinfleet.lanes.leases import ModelLeases
from coinfleet.lanes.running import RunningLanes
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.protocol import Runner

log = structlog.get_logger(__name__)


def lane_server_settings(synchronous_commit: str = "off") -> dict[str, str]:
    """The server settings of a lane's own connection (and the group commit's). It runs the same few
    statements over and over, whose plans do not depend on their parameters (arrays of a batch's rows):
    planned once, not per batch (custom plans doubled PostgreSQL's CPU per one-row batch: 150 → 345 µs).
    Its commits wait for the WAL flush or not as Settings.lane_synchronous_commit says: with "off" (the
    default) a server crash may lose the last fraction of a second of batches, each whole (predictions,
    cursor and outbox rows commit together), and the lane scores those events again; nothing is
    inconsistent."""
    return {"plan_cache_mode": "force_generic_plan", "synchronous_commit": synchronous_commit}


#: a lane connection's server settings with the default durability (benchmarks, tests)
LANE_SERVER_SETTINGS = lane_server_settings()


def lane_connection(dsn: str, settings: Settings) -> OwnConnection:
    """A connection of a lane's own (or of the group commit) with the lane server settings."""
    return OwnConnection(dsn, server_settings=lane_server_settings(settings.lane_synchronous_commit))


class LaneStarter:
    """Makes the runner and the lane of a model; a model that cannot load is quarantined."""

    def __init__(
        self,
        *,
        dsn: str,
        settings: Settings,
        notifier: Notifier,
        services: LaneServices,
        runner_factory: RunnerFactory,
        leases: ModelLeases,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._notifier = notifier
        self._services = services
        self._runner_factory = runner_factory
        self._leases = leases

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._services.pool

    async def start(
        self, model: ModelRecord, lanes: RunningLanes, *, stopping: asyncio.Event, wake: Callable[[], None]
    ) -> None:
        """Take the model's lease (with leases), compile and load the model, then run its lane among
        `lanes`; runs as a task of its own (RunningLanes.start). `wake` asks for a sync, which passes on
        settings changed while the lane started."""
        try:
            runner = await self.runner(model)
        finally:
            lanes.started(model)
        if runner is None:
            return
        if stopping.is_set() or not self._leases.holds(model.id):
            await runner.close()
            return
        lanes.run(self.lane(model, runner), runner)
        if self._settings.gc_freeze:  # what is alive now lives as long as the process (Settings.gc_freeze)
            gc.freeze()
        wake()

    async def runner(self, model: ModelRecord) -> Runner | None:
        """Take the model's lease (with leases), compile and load the model; None when its previous
        owner still holds the lease (tried again at the next sync) or the model cannot load."""
        try:
            if not await self._leases.take(model.id):
                return None
            async with self._pool.acquire() as conn:
                artifact = await registry.load_artifact(conn, model.id)
            made = self._runner_factory(model, artifact)
            return await made if inspect.isawaitable(made) else made
        except DATABASE_ERRORS:
            raise  # not the model's fault: the supervisor tries again once the database is back
        except (CoinfleetError, ValueError) as exc:
            await self.quarantine(model, f"cannot load model: {exc}")
            await self._leases.release(model.id)
            return None
        except asyncio.CancelledError:  # no longer active, or placed elsewhere now
            await self._leases.release(model.id)
            raise

    def lane(self, model: ModelRecord, runner: Runner) -> Lane:
        """The model's lane around a started runner (not running yet)."""
        return Lane(
            model=model,
            runner=runner,
            connection=lane_connection(self._dsn, self._settings),
            signal=self._notifier.subscribe(EVENTS_CHANNEL),
            services=self._services,
            config=LaneConfig.from_settings(self._settings),
            on_quarantine=self.quarantine,
            epoch=self._leases.epoch(model.id),
        )

    async def quarantine(self, model: ModelRecord, reason: str) -> None:
        """Mark the model quarantined; the supervisor then stops its lane, and `models resume` restarts
        it."""
        log.error("model_quarantined", model=model.name, reason=reason)
        async with self._pool.acquire() as conn:
            await registry.set_status(conn, model.name, "quarantined", reason)
