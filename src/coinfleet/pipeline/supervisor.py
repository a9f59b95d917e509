"""Starts one lane per active model, keeps them in step with the registry, and prunes old events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.constants import EVENTS_CHANNEL, MODELS_CHANNEL
from coinfleet.errors import CoinfleetError
from coinfleet.events.cursor import events_behind, prune_events
from coinfleet.events.feed import Notifier
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord
from coinfleet.pipeline.lane import Lane
from coinfleet.pipeline.observations import ObservationService
from coinfleet.pipeline.runner import InlineRunner, Runner

log = structlog.get_logger(__name__)
RunnerFactory = Callable[[ModelRecord, bytes], Runner]


def inline_runner(model: ModelRecord, artifact: bytes) -> Runner:
    """The in-process runner."""
    return InlineRunner.from_artifact(model.format, artifact)


@dataclass
class _Running:
    lane: Lane
    task: asyncio.Task[None]


class Supervisor:
    """Owns the lanes of this process."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        settings: Settings,
        runner_factory: RunnerFactory = inline_runner,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._runner_factory = runner_factory
        self._notifier = Notifier(dsn, (EVENTS_CHANNEL, MODELS_CHANNEL))
        self._observations = ObservationService(pool)
        self._running: dict[int, _Running] = {}
        self._stop = asyncio.Event()

    @property
    def lanes(self) -> list[Lane]:
        """The running lanes, in model id order."""
        return [self._running[k].lane for k in sorted(self._running)]

    def stop(self) -> None:
        """Ask `run` to stop all lanes and return."""
        self._stop.set()

    async def run(self) -> None:
        """Run lanes until `stop`; follow model changes live."""
        await self._notifier.start()
        models_signal = self._notifier.subscribe(MODELS_CHANNEL)
        pruner = asyncio.create_task(self._prune_forever())
        try:
            while not self._stop.is_set():
                await self.sync()
                await models_signal.wait(self._settings.poll_interval_seconds)
        finally:
            pruner.cancel()
            await self._stop_all()
            await self._notifier.close()

    async def sync(self) -> None:
        """Start lanes for newly active models, stop those no longer active, pass on new settings."""
        async with self._pool.acquire() as conn:
            models = {m.id: m for m in await registry.list_models(conn) if m.status == "active"}
        for model_id in list(self._running):
            running = self._running[model_id]
            model = models.get(model_id)
            if model is None or model.version != running.lane.model.version:
                await self._stop_lane(model_id)
            else:
                running.lane.update_model(model)
        for model_id, model in models.items():
            if model_id not in self._running:
                await self._start_lane(model)

    async def _start_lane(self, model: ModelRecord) -> None:
        try:
            async with self._pool.acquire() as conn:
                artifact = await registry.load_artifact(conn, model.id)
            runner = self._runner_factory(model, artifact)
        except (CoinfleetError, ValueError) as exc:
            await self._quarantine(model, f"cannot load model: {exc}")
            return
        lane = Lane(
            model=model,
            runner=runner,
            pool=self._pool,
            observations=self._observations,
            signal=self._notifier.subscribe(EVENTS_CHANNEL),
            batch_max=self._settings.batch_max_events,
            poll_interval=self._settings.poll_interval_seconds,
        )
        task = asyncio.create_task(lane.run(), name=f"lane:{model.name}")
        self._running[model.id] = _Running(lane=lane, task=task)
        log.info("lane_started", model=model.name, version=model.version)

    async def _quarantine(self, model: ModelRecord, reason: str) -> None:
        log.error("model_quarantined", model=model.name, reason=reason)
        async with self._pool.acquire() as conn:
            await registry.set_status(conn, model.name, "quarantined", reason)

    async def _stop_lane(self, model_id: int) -> None:
        running = self._running.pop(model_id)
        running.lane.stop()
        with contextlib.suppress(Exception):
            await running.task
        log.info("lane_stopped", model=running.lane.model.name)

    async def _stop_all(self) -> None:
        for model_id in list(self._running):
            await self._stop_lane(model_id)

    async def refresh_lag(self) -> None:
        """Recount how many events each lane is behind."""
        async with self._pool.acquire() as conn:
            for lane in self.lanes:
                lane.stats.lag_events = await events_behind(conn, lane.cursor)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.prune_interval_seconds)
            try:
                async with self._pool.acquire() as conn:
                    pruned = await prune_events(conn)
                log.debug("events_pruned", count=pruned)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("prune_failed", error=str(exc))
