"""A lane owns one model: its cursor, filters, runner and counters. One lane never waits for another.

Each batch: claim_events → score (batch.py: filters → shared features → the model → the rules) →
store_batch, where predictions, scan-cache changes, webhook outbox rows and the cursor commit in ONE
transaction (one statement when there are no outbox rows), usually together with other lanes' batches
that were ready at the same moment (group_commit). A failed batch is retried from the same cursor
(retries.py), so nothing is lost or written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.db.database import OwnConnection
from coinfleet.errors import Fenced
from coinfleet.events.cursor import Cursor, Event
from coinfleet.events.log import EventLog
from coinfleet.events.notifier import IdlePause, Signal
from coinfleet.features.cache import ObservationService
from coinfleet.lanes.batch import BatchResult, BatchScorer
from coinfleet.lanes.calls import ModelCalls
from coinfleet.lanes.group_commit import GroupCommit
from coinfleet.lanes.position import LanePosition
from coinfleet.lanes.retries import Quarantine, Retries
from coinfleet.lanes.stats import LaneStats, count_batch, count_latencies
from coinfleet.lanes.store import Batch
from coinfleet.lanes.writer import BatchWriter
from coinfleet.models.registry import ModelRecord
from coinfleet.runners.hogs import HogPolicy
from coinfleet.runners.protocol import Runner, RunnerError
from coinfleet.runners.slots import FairSlots

log = structlog.get_logger(__name__)
DEFAULT_FUTURE_TOLERANCE = timedelta(seconds=30)  #: see Settings.future_tolerance_seconds


@dataclass(frozen=True, kw_only=True)
class LaneConfig:
    """How a lane batches, waits and gives up."""

    batch_max: int  #: most events in one batch
    poll_interval: float  #: seconds between looks for events when no NOTIFY wakes the lane
    default_webhook_url: str | None = None  #: for models with alerts on and no webhook of their own
    max_failures: int = 5  #: model failures in the recent window that quarantine the model
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE  #: how far ahead of the wall clock an event may be

    @classmethod
    def from_settings(cls, settings: Settings) -> LaneConfig:
        """The lane settings of a serving process."""
        return cls(
            batch_max=settings.batch_max_events,
            poll_interval=settings.poll_interval_seconds,
            default_webhook_url=settings.default_webhook_url,
            max_failures=settings.runner_max_failures,
            future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
        )


@dataclass(frozen=True, kw_only=True)
class LaneServices:
    """What the lanes of one process share."""

    pool: asyncpg.Pool
    observations: ObservationService  #: the feature cache
    events: EventLog  #: read once for every lane
    slots: FairSlots | None = None  #: execution slots (one per core when not given)
    hogs: HogPolicy | None = None  #: the CPU-hog policy: hogging runners stand still while quick lanes work
    group: GroupCommit | None = None  #: stores batches of several lanes in one statement


class LaneEvents:
    """Where a lane's events come from: the process's event log, woken by NOTIFY, paced when idle."""

    def __init__(self, events: EventLog, signal: Signal, config: LaneConfig) -> None:
        self._events = events
        self._signal = signal
        self._pause = IdlePause(config.poll_interval)
        self._batch_max = config.batch_max

    async def claim(self, cursor: Cursor) -> list[Event]:
        """The next finished events after `cursor`."""
        return await self._events.read(cursor, self._batch_max)

    def handled(self) -> None:
        """A batch was stored: look again at once."""
        self._pause.reset()

    async def wait(self, cursor: Cursor) -> None:
        """Nothing to do after `cursor`: wait for a NOTIFY, or the idle pause."""
        await self._signal.wait(self._pause.seconds(held_back=self._events.held_back(cursor)))

    def wake(self) -> None:
        """End a wait now."""
        self._signal.set()


class Lane:
    """Scores every new event for one model, in its own task, at its own pace."""

    def __init__(
        self,
        *,
        model: ModelRecord,
        runner: Runner,
        connection: OwnConnection,
        signal: Signal,
        services: LaneServices,
        config: LaneConfig,
        on_quarantine: Quarantine | None = None,
        epoch: int | None = None,
    ) -> None:
        self.model = model
        self.epoch = epoch  #: the lease epoch its batches are stored at (None: no lease, not fenced)
        self.fenced = False  #: a batch was refused (the lease passed on): the lane has left `run`
        self.stats = LaneStats()
        self._hogs = services.hogs
        self._stopping = asyncio.Event()
        self._events = LaneEvents(services.events, signal, config)
        self._position = LanePosition(services.pool, model)
        self._calls = ModelCalls(
            model, runner, services.slots or FairSlots(os.cpu_count() or 1), services.hogs
        )
        self._scorer = BatchScorer(
            observations=services.observations,
            calls=self._calls,
            position=self._position,
            default_webhook_url=config.default_webhook_url,
            future_tolerance=config.future_tolerance,
        )
        self._writer = BatchWriter(connection, services.group)
        self._retries = Retries(
            name=model.name,
            stats=self.stats,
            stopping=self._stopping,
            max_failures=config.max_failures,
            on_quarantine=on_quarantine,
        )

    @property
    def cursor(self) -> Cursor:
        """The last event this lane has stored."""
        return self._position.cursor

    def update_model(self, model: ModelRecord) -> None:
        """Take new settings for the same model version; the next batch uses them."""
        self.model = model

    def stop(self) -> None:
        """Finish the current batch, then leave `run`."""
        self._stopping.set()
        self._events.wake()

    async def run(self) -> None:
        """Batches until stopped or quarantined; errors are logged, counted and retried with backoff."""
        try:
            await self._run_batches()
        finally:
            await self._calls.runner.close()
            await self._writer.close()

    async def _run_batches(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.step()
            except Fenced as exc:  # another worker owns the model now: nothing of the batch was stored
                log.warning("lane_fenced", model=self.model.name, epoch=self.epoch, error=str(exc))
                self.fenced = True
                break
            except Exception as exc:  # one model's failure never leaves its lane
                if not isinstance(exc, RunnerError):
                    self._position.mark_stale()  # the database may have lost this lane's last commits
                if await self._retries.failed(self.model, exc):
                    break
                continue
            self._retries.succeeded(handled)
            if handled:
                self._events.handled()
            else:
                await self._events.wait(self.cursor)

    async def step(self) -> bool:
        """Handle one batch; False when there was nothing to do."""
        await self._position.refresh(self.model.settings)
        with self._quick_work():
            events = await self.claim_events()
            if not events:
                return False
            started = time.perf_counter()
            result = await self._scorer.score(self.model, events)
            await self.store_batch(result, events[-1].cursor)
        count_latencies(self.stats, self.model.name, result.predictions)
        count_batch(self.stats, self.model.name, events, result)
        log.debug(
            "batch_stored",
            model=self.model.name,
            events=len(events),
            predictions=len(result.predictions),
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        return True

    def _quick_work(self) -> contextlib.AbstractContextManager[None]:
        """While a quick model's batch is in flight, hogging runners stand still (see HogPolicy)."""
        if self._hogs is None:
            return contextlib.nullcontext()
        return self._hogs.quick_work(self._calls.runner)

    async def claim_events(self) -> list[Event]:
        """The next finished events after this lane's cursor."""
        return await self._events.claim(self.cursor)

    async def store_batch(self, result: BatchResult, cursor: Cursor) -> None:
        """Predictions, scan-cache changes, outbox rows and the cursor in one transaction (BatchWriter).
        Fenced, storing nothing, when the lane's lease passed to another worker (the lane stops; the
        model starts again wherever it is owned now); a CURSOR_MOVED error when the stored cursor is no
        longer the lane's (the server lost a commit in a crash, an operator reset it): the lane reloads
        it and scores from there."""
        position = self._position
        batch = Batch(
            model=self.model, predictions=result.predictions, states=result.states, cursor=cursor,
            keeps_scan_cache=position.keeps_scan_cache, outbox=result.outbox, expected=position.cursor,
            set_aside=result.set_aside, epoch=self.epoch,
        )  # fmt: skip
        await self._writer.write(batch)
        position.advance(cursor, result.states)
