"""A lane's calls into its model: a fair slot, the runner, a check of the answer; a batch that fails on a
few of its rows is split until those rows are found, so they alone are set aside."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog

from coinfleet.events.cursor import Event
from coinfleet.features.cache import Observation, feature_indices
from coinfleet.lanes.rules import Skip
from coinfleet.lanes.store import SetAside
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.hogs import HogPolicy
from coinfleet.runners.protocol import BAD_OUTPUT, CRASH, LOAD, MEMORY, TIMEOUT, Runner, RunnerError
from coinfleet.runners.slots import FairSlots

log = structlog.get_logger(__name__)
#: runner failures no single row is blamed for: a timeout or the memory limit is the model's (or the
#: machine's) doing, and a crash is not searched for a row (each try would restart the model's process);
#: an exception the model raised or a non-finite probability makes the lane split the batch
NOT_ROW_FAILURES = frozenset({TIMEOUT, MEMORY, LOAD, CRASH})
#: most events one batch sets aside as failing for the model; a batch with more failed as a whole
MAX_SET_ASIDE = 8
Pairing = tuple[Event, Observation]  #: an event and what the feature service observed at it
Scored = tuple[Pairing, float]  #: an event, its observation and the model's probability
Failed = tuple[Pairing, RunnerError]  #: an event, its observation and how the model failed on it


class ModelCalls:
    """Calls one model's runner for a lane: through the fair slots, one row set aside at a time."""

    def __init__(
        self, model: ModelRecord, runner: Runner, slots: FairSlots, hogs: HogPolicy | None = None
    ) -> None:
        self.runner = runner
        self._slots = slots
        self._hogs = hogs
        self._columns = feature_indices(model.features)
        self._witness: Observation | None = None  #: a row the model scored last (see _witness_scores)

    async def predict_or_set_aside(
        self, model: ModelRecord, observed: list[Pairing], set_aside: list[SetAside]
    ) -> tuple[list[Pairing], np.ndarray]:
        """The model's probabilities for the batch. When the batch fails in a way one row can cause, it
        is split until the failing rows are found; they go to `set_aside` and the rest is scored. When
        the model fails on the last row it scored too, on every row, or on more than a few rows, the
        model is at fault and the batch fails as before (towards quarantine)."""
        try:
            probabilities = await self.predict(model, [obs for _, obs in observed])
        except RunnerError as exc:
            if exc.reason in NOT_ROW_FAILURES or not await self._witness_scores(model):
                raise
            scored: list[Scored] = []
            failed: list[Failed] = []
            await self._bisect(model, observed, scored, failed)
            if not scored and self._witness is None:
                raise
            set_aside.extend(_set_aside(model, event, error) for (event, _), error in failed)
            observed = [pair for pair, _ in scored]
            probabilities = np.array([p for _, p in scored], dtype=np.float64)
        if observed:
            self._witness = observed[-1][1]
        return observed, probabilities

    async def _bisect(
        self, model: ModelRecord, observed: list[Pairing], scored: list[Scored], failed: list[Failed]
    ) -> None:
        """Score both halves of a failed batch, splitting each failing half again: the rows scored go to
        `scored` with their probabilities, the single rows that fail to `failed` with their error. More
        than MAX_SET_ASIDE failing rows raise the last error: that is the model, not its input (and the
        search stays within ~2·MAX_SET_ASIDE·log2(rows) calls)."""
        half = len(observed) // 2
        for part in (observed[:half], observed[half:]) if half else (observed,):
            try:
                probabilities = await self.predict(model, [obs for _, obs in part])
            except RunnerError as exc:
                if exc.reason in NOT_ROW_FAILURES or len(failed) >= MAX_SET_ASIDE:
                    raise
                if len(part) == 1:
                    failed.append((part[0], exc))
                else:
                    await self._bisect(model, part, scored, failed)
                continue
            scored.extend(zip(part, probabilities.tolist(), strict=True))

    async def _witness_scores(self, model: ModelRecord) -> bool:
        """Whether the model still scores the last row it scored, so that a row failing alone is at fault
        (True before it scored any: then the search itself must find a row that scores)."""
        if self._witness is None:
            return True
        try:
            await self.predict(model, [self._witness])
        except RunnerError:
            return False
        return True

    async def predict(self, model: ModelRecord, observations: Sequence[Observation]) -> np.ndarray:
        """The runner's probabilities for the model's feature columns."""
        matrix = np.stack([obs.features for obs in observations])[:, self._columns].astype(np.float32)
        try:
            slot = self._slots.slot(
                model.name,
                model.settings.weight,
                hog=self.hogging,
                expected_seconds=self.runner.expected_cpu_seconds(len(matrix)),
            )
            async with slot as lease:
                probabilities = await self.runner.predict(matrix, on_answer=lease.release)
        except RunnerError:
            raise
        except Exception as exc:  # whatever the model raised counts as the model's failure
            raise RunnerError(type(exc).__name__, str(exc)) from exc
        if probabilities.shape != (len(observations),) or not np.all(np.isfinite(probabilities)):
            shape = probabilities.shape
            raise RunnerError(
                BAD_OUTPUT, f"runner returned {shape} probabilities for {len(observations)} rows"
            )
        clipped: np.ndarray = np.clip(probabilities, 0.0, 1.0)
        return clipped

    @property
    def hogging(self) -> bool:
        """Whether the runner hogs a core now (its slot then does not count against quick runners')."""
        return self._hogs is not None and self._hogs.hogging(self.runner)


def _set_aside(model: ModelRecord, event: Event, error: RunnerError) -> SetAside:
    detail = f"{error.reason}: {error}"
    log.warning("event_set_aside", model=model.name, mint=event.mint, ts=str(event.ts), error=detail)
    return SetAside(event=event, reason=Skip.MODEL_FAILED, detail=detail)
