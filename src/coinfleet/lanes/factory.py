"""How a serving process builds a model's runner: in process, or compiled to ONNX where it can and run in a
child process of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import numpy as np
import numpy.typing as npt

from coinfleet.config import Settings
from coinfleet.db.sql import query
from coinfleet.features.cache import ObservationService, feature_indices
from coinfleet.models.compile import Served, served_model
from coinfleet.models.registry import ModelRecord
from coinfleet.models.sandbox import SandboxLimits
from coinfleet.models.settings import ModelSettings
from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.hogs import HogPolicy
from coinfleet.runners.process import ProcessRunner, RunnerLimits
from coinfleet.runners.protocol import InlineRunner, Runner

#: builds a model's runner from its record and artifact (sync or async)
RunnerFactory = Callable[[ModelRecord, bytes], Runner | Awaitable[Runner]]
#: recent events whose real feature rows join the synthetic ones when a compiled model is verified
VERIFY_EVENTS = 512


def inline_runner(model: ModelRecord, artifact: bytes) -> Runner:
    """The in-process runner."""
    return InlineRunner.from_artifact(model.format, artifact)


def default_runner_factory(
    settings: Settings, pool: asyncpg.Pool, observations: ObservationService, hogs: HogPolicy
) -> RunnerFactory:
    """The runner factory `settings.runner` asks for."""
    if settings.runner == "inline":
        return inline_runner
    return ProcessRunnerFactory(
        pool=pool,
        observations=observations,
        compile_onnx=settings.runner_compile_onnx,
        hogs=hogs,
        compile_limits=SandboxLimits(
            timeout_seconds=settings.model_check_timeout_seconds,
            memory_limit_mb=settings.model_check_memory_mb,
        ),
    )


def runner_limits(settings: ModelSettings) -> RunnerLimits:
    """A model's batch timeout and memory limit."""
    return RunnerLimits(
        timeout_seconds=settings.batch_timeout_seconds, memory_limit_mb=settings.memory_limit_mb
    )


class ProcessRunnerFactory:
    """Compiles a model to ONNX where it can (cached per artifact), then starts its runner process."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        observations: ObservationService,
        compile_onnx: bool,
        hogs: HogPolicy | None = None,
        compile_limits: SandboxLimits | None = None,
    ) -> None:
        self._pool = pool
        self._compile_limits = compile_limits
        self.hogs = hogs
        self._observations = observations
        self._compile_onnx = compile_onnx

    async def __call__(self, model: ModelRecord, artifact: bytes) -> Runner:
        """A started runner; RunnerError or ModelLoadError when the model cannot load."""
        served = await self._served(model, artifact)
        runner = ProcessRunner(
            LoaderSpec.for_artifact(served.format, served.artifact),
            name=model.name,
            limits=runner_limits(model.settings),
            hogs=self.hogs,
        )
        try:
            await runner.start()
        except BaseException:  # a start that failed or was called off leaves no child behind
            await runner.close()
            raise
        return runner

    async def _served(self, model: ModelRecord, artifact: bytes) -> Served:
        if not self._compile_onnx:
            return Served(format=model.format, artifact=artifact, compiled=False, reason="compiling is off")
        return await served_model(
            self._pool,
            model,
            artifact,
            real_rows=lambda: self._recent_rows(model),
            limits=self._compile_limits,
        )

    async def _recent_rows(self, model: ModelRecord) -> npt.NDArray[np.float64] | None:
        """The model's feature rows at the newest events (None before the first event)."""
        async with self._pool.acquire() as conn:
            keys = [(r["mint"], r["ts"]) for r in await conn.fetch(query("recent_events"), VERIFY_EVENTS)]
        columns = feature_indices(model.features)
        rows = [obs.features[columns] for obs in await self._observations.observe(keys) if obs is not None]
        return np.stack(rows).astype(np.float64) if rows else None
