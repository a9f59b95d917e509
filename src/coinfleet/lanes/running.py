"""The lanes of one process: those running, with their tasks and runners, and those still starting; and
bringing the running ones in line with the models placed here (stop, or pass on new settings)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from coinfleet.lanes.factory import runner_limits
from coinfleet.lanes.lane import Lane
from coinfleet.lanes.leases import ModelLeases
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.process import ProcessRunner
from coinfleet.runners.protocol import Runner

log = structlog.get_logger(__name__)


@dataclass
class RunningLane:
    """A lane, the task that runs it, and its runner."""

    lane: Lane
    task: asyncio.Task[None]
    runner: Runner


class RunningLanes:
    """Lanes by model id, running or starting (compiling, loading: each on its own task, so a slow one
    delays no other); a lane that stops hands its model's lease back."""

    def __init__(self, leases: ModelLeases, on_ended: Callable[[asyncio.Task[None]], None]) -> None:
        self._leases = leases
        self._on_ended = on_ended
        self.running: dict[int, RunningLane] = {}
        self._starting: dict[int, tuple[int, asyncio.Task[None]]] = {}  #: model id → (version, task)
        self.restarts = 0  #: lanes that died with an error and were started again

    def lanes(self) -> list[Lane]:
        """The running lanes, in model id order."""
        return [self.running[k].lane for k in sorted(self.running)]

    def runner_pids(self) -> list[int | None]:
        """The process ids of the lanes' runner processes (None: inline, or not running)."""
        return [r.runner.pid if isinstance(r.runner, ProcessRunner) else None for r in self.running.values()]

    def known(self, model_id: int) -> bool:
        """Whether the model's lane runs or is starting."""
        return model_id in self.running or model_id in self._starting

    def start(self, model: ModelRecord, starting: Coroutine[Any, Any, None]) -> None:
        """Run `starting` (which ends in `run` or not at all) as the model's start."""
        task = asyncio.create_task(starting, name=f"start:{model.name}")
        self._starting[model.id] = (model.version, task)

    def started(self, model: ModelRecord) -> None:
        """The model's start is over, however it ended."""
        if self._starting.get(model.id, (None,))[0] == model.version:
            self._starting.pop(model.id)

    def cancel_starts(self, models: dict[int, ModelRecord]) -> None:
        """Call off starts of models no longer active here, or at another version now."""
        for model_id, (version, task) in list(self._starting.items()):
            if model_id not in models or models[model_id].version != version:
                task.cancel()
                self._starting.pop(model_id)

    def run(self, lane: Lane, runner: Runner) -> None:
        """Run the lane in a task of its own."""
        task = asyncio.create_task(lane.run(), name=f"lane:{lane.model.name}")
        task.add_done_callback(self._on_ended)
        self.running[lane.model.id] = RunningLane(lane=lane, task=task, runner=runner)
        log.info("lane_started", model=lane.model.name, version=lane.model.version)

    async def update(self, models: dict[int, ModelRecord]) -> None:
        """Bring the running lanes in line with the models that should run here: stop the lanes of models
        gone, at another version now, or whose lease was lost; pass new settings on to the others. Starts
        of models no longer wanted are called off; starting new lanes is the caller's (`start`)."""
        await self.forget_dead()
        for model_id in list(self.running):
            running = self.running[model_id]
            model = models.get(model_id)
            if model is None or model.version != running.lane.model.version or self._fenced(running):
                await self.stop(model_id)
            else:
                running.lane.update_model(model)
                if isinstance(running.runner, ProcessRunner):
                    running.runner.set_limits(runner_limits(model.settings))
        self.cancel_starts(models)

    def _fenced(self, running: RunningLane) -> bool:
        """Whether the lane lost its lease: a batch was refused, or a heartbeat could not renew it."""
        return not self._leases.holds(running.lane.model.id) or running.lane.fenced

    async def forget_dead(self) -> None:
        """Forget lanes whose task ended by itself (an error escaped, it quarantined its model, or it
        was fenced) and hand back their leases: the next sync starts them again, taking the lease
        anew, if their model is still active and placed here."""
        for model_id, running in list(self.running.items()):
            if not running.task.done():
                continue
            del self.running[model_id]
            error = None if running.task.cancelled() else running.task.exception()
            if error is not None:
                name = running.lane.model.name
                log.error("lane_died", model=name, error=f"{type(error).__name__}: {error}")
                self.restarts += 1
            await self._leases.release(model_id)

    async def stop(self, model_id: int) -> None:
        """Stop the lane after its current batch; it is listed among `lanes` until then."""
        running = self.running[model_id]
        running.lane.stop()
        with contextlib.suppress(Exception):
            await running.task
        del self.running[model_id]
        log.info("lane_stopped", model=running.lane.model.name)
        await self._leases.release(model_id)

    async def stop_all(self) -> None:
        """Call off every start and stop every lane."""
        starting = [task for _, task in self._starting.values()]
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        for model_id in list(self.running):
            await self.stop(model_id)
