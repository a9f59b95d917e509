"""Runners turn feature matrices into probabilities. The lane only knows this interface.

`InlineRunner` runs the model in the lane's own process (tests, tiny setups); a process-per-model
runner plugs in behind the same interface.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np

from coinfleet.models.formats import Predictor, load_predictor


class Runner(Protocol):
    """Scores micro-batches for one model."""

    async def predict(self, features: np.ndarray) -> np.ndarray:
        """P(class 1) per row of `features` (float64, shape [N])."""
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

    async def predict(self, features: np.ndarray) -> np.ndarray:
        """Score in a thread so other lanes keep running."""
        return await asyncio.to_thread(self._predictor.predict_proba, features)

    async def close(self) -> None:
        """Nothing to release in process."""
