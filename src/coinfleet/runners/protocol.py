"""Runners turn feature matrices into probabilities. The lane only knows this interface.

`InlineRunner` runs the model in the lane's own process (tests, tiny setups); `ProcessRunner`
(process.py) runs it in a child process of its own behind the same interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import numpy as np

from coinfleet.errors import CoinfleetError
from coinfleet.models.formats import Predictor, load_predictor

#: failure reasons a runner reports besides the model's own exception type
CRASH = "crash"
TIMEOUT = "timeout"
MEMORY = "memory"
LOAD = "load"
BAD_OUTPUT = "bad_output"


class RunnerError(CoinfleetError):
    """A batch failed in the runner; `reason` says how (crash, timeout, memory, load, an error type)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def failure_reason(exc: BaseException) -> str:
    """The reason a failure is counted under: a runner's own reason, else the exception type."""
    return exc.reason if isinstance(exc, RunnerError) else type(exc).__name__


class Runner(Protocol):
    """Scores micro-batches for one model."""

    def expected_cpu_seconds(self, rows: int) -> float | None:
        """CPU seconds a batch of `rows` will likely take, by the last batch; None when unknown."""
        ...

    async def predict(
        self, features: np.ndarray, *, on_answer: Callable[[], None] | None = None
    ) -> np.ndarray:
        """P(class 1) per row of `features` (float64, shape [N]). `on_answer`, when given, may be called
        as soon as the model's work is over, before this returns (its execution slot can go back)."""
        ...

    async def close(self) -> None:
        """Release the model."""
        ...


class InlineRunner:
    """Runs the model in this process, off the event loop in a worker thread."""

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor

    @classmethod
    def from_artifact(cls, fmt: str, artifact: bytes) -> InlineRunner:
        """Load the model file once."""
        return cls(load_predictor(fmt, artifact))

    def expected_cpu_seconds(self, rows: int) -> float | None:
        """Not measured in process."""
        return None

    async def predict(
        self, features: np.ndarray, *, on_answer: Callable[[], None] | None = None
    ) -> np.ndarray:
        """Score in a thread so other lanes keep running."""
        return await asyncio.to_thread(self._predictor.predict_proba, features)

    async def close(self) -> None:
        """Nothing to release in process."""
