"""What a lane does when a batch fails: count it, wait, and quarantine a model that keeps failing.

A failed batch is retried from the same cursor, so nothing is lost or written twice. A database outage
waits with a growing pause and never counts against the model; neither does a cursor that moved under
the lane (it reloads it). Only the model's own failures count towards quarantine, over a window of
recent batches, so a model that crashes every few batches is caught too."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from coinfleet.constants import CURSOR_MOVED_SQLSTATE
from coinfleet.db.outage import Outage, is_outage
from coinfleet.lanes import telemetry
from coinfleet.lanes.stats import LaneStats
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.protocol import RunnerError, failure_reason

log = structlog.get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
FAILURE_WINDOW = 20  #: recent batches in which `max_failures` model failures quarantine a model
#: hands a model that failed too often to the supervisor, with the reason
Quarantine = Callable[[ModelRecord, str], Awaitable[None]]


class Retries:
    """One lane's failures: counted into its stats, paced with backoff, ended by quarantine."""

    def __init__(
        self,
        *,
        name: str,
        stats: LaneStats,
        stopping: asyncio.Event,
        max_failures: int,
        on_quarantine: Quarantine | None,
    ) -> None:
        self._stats = stats
        self._stopping = stopping
        self._max_failures = max_failures
        self._on_quarantine = on_quarantine
        self._failures = 0  #: in a row, of any kind: paces the retries
        self._recent: deque[bool] = deque(maxlen=FAILURE_WINDOW)  #: whether each was the model's
        self._outage = Outage(f"lane:{name}")

    def succeeded(self, handled: bool) -> None:
        """A step went through (`handled`: it stored a batch)."""
        self._failures = 0
        self._outage.succeeded()
        if handled:
            self._recent.append(False)

    async def failed(self, model: ModelRecord, exc: Exception) -> bool:
        """Wait as the failure asks before the retry; True when the model was quarantined (the lane
        ends)."""
        if is_outage(exc):
            await self._back_off(self._outage.failed(exc))
            return False
        if _cursor_moved(exc):
            log.warning("cursor_behind_lane", model=model.name, error=str(exc))
            return False
        self._failures += 1
        self._recent.append(isinstance(exc, RunnerError))
        self.record_error(model, exc)
        if await self._quarantine_if_due(model, sum(self._recent), exc):
            return True
        await self._back_off(min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** max(self._failures, sum(self._recent))))
        return False

    def record_error(self, model: ModelRecord, exc: Exception) -> None:
        """Count a failure by its reason and log it."""
        reason = failure_reason(exc)
        self._stats.errors[reason] += 1
        telemetry.ERRORS.labels(model.name, reason).inc()
        self._stats.last_error = f"{reason}: {exc}"
        log.error("batch_failed", model=model.name, error=self._stats.last_error)

    async def _back_off(self, seconds: float) -> None:
        """Wait before retrying a failed batch; new events do not cut this short (they would make a
        crashing model restart at the feed's pace), only the lane's stop does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _quarantine_if_due(self, model: ModelRecord, model_failures: int, exc: Exception) -> bool:
        """After too many recent model failures, hand the model to `on_quarantine`; True when done."""
        if self._on_quarantine is None or model_failures < self._max_failures:
            return False
        reason = (
            f"{model_failures} of the last {FAILURE_WINDOW} batches failed, "
            f"the last with {failure_reason(exc)}: {exc}"
        )
        try:
            await self._on_quarantine(model, reason)
        except Exception as error:  # the database may be away: keep the lane and try again next failure
            self.record_error(model, error)
            return False
        return True


def _cursor_moved(exc: Exception) -> bool:
    """Whether a store failed because the stored cursor is not where the lane left it."""
    return getattr(exc, "sqlstate", None) == CURSOR_MOVED_SQLSTATE
