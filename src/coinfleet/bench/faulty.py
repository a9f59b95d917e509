"""Misbehaving models for the isolation benchmark: slow, crashing and hanging predictors.

They are loaded by module-level loader functions, so a runner's child process can import them.
"""

from __future__ import annotations

import os
import time

import numpy as np

SLOW_SECONDS_PER_ROW = 0.05  #: the slow model's CPU time per row
CRASH_EVERY = 3  #: the crashing model's process aborts on every third batch


def burn(seconds: float) -> None:
    """Use `seconds` of CPU time (a stand-in for an expensive model; time spent waiting does not count)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class SlowPredictor:
    """Burns 50 ms of CPU per row."""

    n_features = None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Answer 0.5 after burning CPU."""
        burn(SLOW_SECONDS_PER_ROW * len(x))
        return np.full(len(x), 0.5)


class CostlyPredictor:
    """Burns a fixed CPU time per row (the priority benchmark's model)."""

    n_features = None

    def __init__(self, seconds_per_row: float) -> None:
        self._seconds_per_row = seconds_per_row

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Answer 0.5 after burning CPU."""
        burn(self._seconds_per_row * len(x))
        return np.full(len(x), 0.5)


class CrashingPredictor:
    """Kills its own process every few batches, as a segfaulting native library would."""

    n_features = None

    def __init__(self) -> None:
        self._batches = 0

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Answer 0.5, or abort."""
        self._batches += 1
        if self._batches % CRASH_EVERY == 0:
            os.abort()
        return np.full(len(x), 0.5)


class HangingPredictor:
    """Never answers."""

    n_features = None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Sleep forever."""
        while True:
            time.sleep(3600)


def load_slow() -> SlowPredictor:
    """Loader of the slow model."""
    return SlowPredictor()


def load_costly(seconds_per_row: float) -> CostlyPredictor:
    """Loader of the priority benchmark's model."""
    return CostlyPredictor(seconds_per_row)


def load_crashing() -> CrashingPredictor:
    """Loader of the crashing model."""
    return CrashingPredictor()


def load_hanging() -> HangingPredictor:
    """Loader of the hanging model."""
    return HangingPredictor()
