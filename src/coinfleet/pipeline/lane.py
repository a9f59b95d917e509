"""A lane owns one model: its cursor, filters, runner and counters. One lane never waits for another.

Each batch: claim_events → select_candidates → observe (shared features) → predict → decide
(the sequential rules) → store_batch, where predictions, scan-cache changes, webhook outbox rows and
the cursor commit in ONE transaction (one statement when there are no outbox rows), usually together
with other lanes' batches that were ready at the same moment (group_commit). A failed batch is retried
from the same cursor, so nothing is lost or written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog

from coinfleet.alerts.outbox import OutboxItem
from coinfleet.alerts.rules import route
from coinfleet.db.database import OwnConnection
from coinfleet.errors import Fenced
from coinfleet.events.cursor import Cursor, Event, load_cursor
from coinfleet.events.feed import IdlePause, Signal
from coinfleet.events.log import EventLog
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.pipeline import telemetry
from coinfleet.pipeline.group_commit import GroupCommit
from coinfleet.pipeline.hogs import HogGate
from coinfleet.pipeline.observations import Observation, ObservationService, feature_indices
from coinfleet.pipeline.rules import (
    CoinState,
    Decision,
    Skip,
    Tag,
    decide,
    definitely_skipped,
    phase_allowed,
    tag_for,
)
from coinfleet.pipeline.runner import BAD_OUTPUT, Runner, RunnerError, failure_reason
from coinfleet.pipeline.scheduler import FairSlots
from coinfleet.pipeline.store import Batch, NewPrediction, load_states, write_batches_or_skip_repeats

log = structlog.get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
FAILURE_WINDOW = 20  #: recent batches in which `max_failures` model failures quarantine a model
LATENCY_SAMPLES = 100_000  #: latencies kept per lane for quantiles


class Samples:
    """The newest float samples in a fixed numpy ring: no Python object per sample for the GC to walk."""

    def __init__(self, size: int = LATENCY_SAMPLES) -> None:
        self._ring = np.empty(size, dtype=np.float64)
        self._added = 0

    def __len__(self) -> int:
        return min(self._added, len(self._ring))

    def extend(self, values: npt.ArrayLike) -> None:
        """Add samples; the oldest beyond the ring's size are forgotten."""
        size = len(self._ring)
        new = np.asarray(values, dtype=np.float64)[-size:]
        start = self._added % size
        head = min(len(new), size - start)
        self._ring[start : start + head] = new[:head]
        self._ring[: len(new) - head] = new[head:]
        self._added += len(new)

    def clear(self) -> None:
        """Forget every sample."""
        self._added = 0

    def values(self) -> npt.NDArray[np.float64]:
        """The kept samples, in no particular order."""
        return self._ring[: len(self)].copy()

    def quantile(self, q: float) -> float | None:
        """A quantile of the kept samples, None when there are none."""
        return float(np.quantile(self._ring[: len(self)], q)) if len(self) else None


@dataclass
class LaneStats:
    """Counters of one lane, read by the demo table, the API and metrics."""

    events: int = 0  #: events the cursor has passed
    scored: int = 0  #: rows sent to the runner
    batches: int = 0
    predictions: Counter[str] = field(default_factory=Counter)  #: stored, by tag
    skips: Counter[str] = field(default_factory=Counter)  #: by reason
    errors: Counter[str] = field(default_factory=Counter)  #: by reason (crash, timeout, memory, error type)
    last_probability: float | None = None
    last_batch_size: int = 0
    lag_events: int = 0
    last_error: str | None = None
    #: recent latencies in seconds, metric row inserted (the trigger's clock) → prediction committed
    latencies: Samples = field(default_factory=Samples)
    #: when those predictions' metric rows were inserted (epoch seconds), in the order of `latencies`
    inserted: Samples = field(default_factory=Samples)

    def latency_quantile(self, q: float) -> float | None:
        """A quantile of the recent latencies (seconds), None before the first prediction."""
        return self.latencies.quantile(q)

    def record_latencies(
        self, inserted: npt.NDArray[np.float64], committed: float
    ) -> npt.NDArray[np.float64]:
        """Predictions of metric rows inserted at `inserted` (epoch seconds) were committed at
        `committed`; return their latencies in seconds."""
        seconds = committed - inserted
        self.latencies.extend(seconds)
        self.inserted.extend(inserted)
        return seconds

    def clear_latencies(self) -> None:
        """Start a new window of latencies."""
        self.latencies.clear()
        self.inserted.clear()


@dataclass
class BatchResult:
    """What scoring one batch produced, before it is stored."""

    predictions: list[NewPrediction] = field(default_factory=list)
    states: dict[str, CoinState] = field(default_factory=dict)
    skips: Counter[str] = field(default_factory=Counter)
    scored: int = 0
    last_probability: float | None = None
    #: predictions the model's send rules pick for its webhook, suppressed ones included
    outbox: list[OutboxItem] = field(default_factory=list)


def select_candidates(
    settings: ModelSettings, states: dict[str, CoinState], events: Sequence[Event], skips: Counter[str]
) -> list[Event]:
    """Drop the events no rule could let through: backlog policy, staleness, definite skips."""
    newest_ts = max(e.ts for e in events)
    last_per_coin = {e.mint: e for e in events}
    chosen = []
    for event in events:
        reason = _backlog_skip(settings, event, newest_ts, last_per_coin)
        reason = reason or definitely_skipped(settings, states.get(event.mint), event.mint, event.ts)
        if reason:
            skips[reason] += 1
        else:
            chosen.append(event)
    return chosen


def _backlog_skip(
    settings: ModelSettings, event: Event, newest_ts: datetime, last_per_coin: dict[str, Event]
) -> Skip | None:
    """The backlog policy: only the newest event per coin, and nothing older than the staleness limit."""
    if settings.backlog_policy == "newest" and last_per_coin[event.mint] is not event:
        return Skip.SUPERSEDED
    limit = settings.max_staleness_seconds
    if limit is not None and newest_ts - event.ts > timedelta(seconds=limit):
        return Skip.STALE
    return None


class Lane:
    """Scores every new event for one model, in its own task, at its own pace."""

    def __init__(
        self,
        *,
        model: ModelRecord,
        runner: Runner,
        pool: asyncpg.Pool,
        connection: OwnConnection,
        observations: ObservationService,
        signal: Signal,
        batch_max: int,
        poll_interval: float,
        default_webhook_url: str | None = None,
        events: EventLog,
        slots: FairSlots | None = None,
        hogs: HogGate | None = None,
        group: GroupCommit | None = None,
        max_failures: int = 5,
        on_quarantine: Callable[[ModelRecord, str], Awaitable[None]] | None = None,
        epoch: int | None = None,
    ) -> None:
        self.model = model
        self.epoch = epoch  #: the lease epoch its batches are stored at (None: no lease, not fenced)
        self.fenced = False  #: a batch was refused (the lease passed on): the lane has left `run`
        self.stats = LaneStats()
        self._runner = runner
        self._pool = pool
        self._connection = connection
        self._observations = observations
        self._signal = signal
        self._batch_max = batch_max
        self._pause = IdlePause(poll_interval)
        self._default_webhook_url = default_webhook_url
        self._slots = slots or FairSlots(os.cpu_count() or 1)
        self._events = events
        self._hogs = hogs
        self._group = group
        self._columns = feature_indices(model.features)
        self._states: dict[str, CoinState] = {}
        self._keeps_scan_cache = False  #: `_states` is loaded and kept (the model's rules read it)
        self._cursor = Cursor(tx=0, seq=0)
        self._stopping = asyncio.Event()
        self._max_failures = max_failures
        self._on_quarantine = on_quarantine

    @property
    def cursor(self) -> Cursor:
        """The last event this lane has stored."""
        return self._cursor

    def update_model(self, model: ModelRecord) -> None:
        """Take new settings for the same model version; the next batch uses them."""
        self.model = model

    def stop(self) -> None:
        """Finish the current batch, then leave `run`."""
        self._stopping.set()
        self._signal.set()

    async def run(self) -> None:
        """Batches until stopped or quarantined; errors are logged, counted and retried with backoff."""
        await self._load()
        failures = 0  #: in a row, of any kind: paces the retries
        # only the model's own failures count towards quarantine (a database outage must not), and
        # over a window of recent batches, so a model that crashes every few batches is caught too
        recent: deque[bool] = deque(maxlen=FAILURE_WINDOW)
        while not self._stopping.is_set():
            try:
                handled = await self.step()
                failures = 0
                if handled:
                    recent.append(False)
                    self._pause.reset()
            except Fenced as exc:  # another worker owns the model now: nothing of the batch was stored
                log.warning("lane_fenced", model=self.model.name, epoch=self.epoch, error=str(exc))
                self.fenced = True
                break
            except Exception as exc:  # one model's failure never leaves its lane
                failures += 1
                recent.append(isinstance(exc, RunnerError))
                self._record_error(exc)
                if await self._quarantine_if_due(sum(recent), exc):
                    break
                await self._back_off(min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** max(failures, sum(recent))))
                continue
            if not handled:
                await self._signal.wait(self._pause.seconds(held_back=self._events.held_back(self._cursor)))
        await self._runner.close()
        await self._connection.close()

    async def _back_off(self, seconds: float) -> None:
        """Wait before retrying a failed batch; new events do not cut this short (they would make a
        crashing model restart at the feed's pace), only `stop` does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _load(self) -> None:
        async with self._pool.acquire() as conn:
            self._cursor = await load_cursor(conn, self.model.id)

    async def _follow_settings(self) -> None:
        """Keep the scan cache while the model's rules read it; when they start to, load it (complete)."""
        reads = self.model.settings.reads_scan_cache
        if reads and not self._keeps_scan_cache:
            async with self._pool.acquire() as conn:
                self._states = await load_states(conn, self.model.id)
        elif not reads:
            self._states = {}
        self._keeps_scan_cache = reads

    def _record_error(self, exc: Exception) -> None:
        reason = failure_reason(exc)
        self.stats.errors[reason] += 1
        telemetry.ERRORS.labels(self.model.name, reason).inc()
        self.stats.last_error = f"{reason}: {exc}"
        log.error("batch_failed", model=self.model.name, error=self.stats.last_error)

    async def _quarantine_if_due(self, model_failures: int, exc: Exception) -> bool:
        """After too many recent model failures, hand the model to `on_quarantine`; True when done."""
        if self._on_quarantine is None or model_failures < self._max_failures:
            return False
        reason = (
            f"{model_failures} of the last {FAILURE_WINDOW} batches failed, "
            f"the last with {failure_reason(exc)}: {exc}"
        )
        try:
            await self._on_quarantine(self.model, reason)
        except Exception as error:  # the database may be away: keep the lane and try again next failure
            self._record_error(error)
            return False
        return True

    async def step(self) -> bool:
        """Handle one batch; False when there was nothing to do."""
        await self._follow_settings()
        with self._quick_work():
            events = await self.claim_events()
            if not events:
                return False
            started = time.perf_counter()
            result = await self.score(events)
            await self.store_batch(result, events[-1].cursor)
        self._record_latencies(result.predictions)
        self._count(events, result)
        log.debug(
            "batch_stored",
            model=self.model.name,
            events=len(events),
            predictions=len(result.predictions),
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        return True

    def _quick_work(self) -> contextlib.AbstractContextManager[None]:
        """While a quick model's batch is in flight, hogging runners stand still (see HogGate)."""
        if self._hogs is None or self._runner.hogging:
            return contextlib.nullcontext()
        return self._hogs.quick_work()

    async def claim_events(self) -> list[Event]:
        """The next finished events after this lane's cursor."""
        return await self._events.read(self._cursor, self._batch_max)

    async def score(self, events: Sequence[Event]) -> BatchResult:
        """Filter, build features, predict and apply the rules to a batch (no writes)."""
        settings = self.model.settings
        result = BatchResult()
        candidates = select_candidates(settings, self._states, events, result.skips)
        observed = await self._observe(candidates, result)
        if observed:
            probabilities = await self.predict([obs for _, obs in observed])
            result.scored = len(observed)
            self._apply_rules(observed, probabilities, result)
        return result

    async def _observe(self, events: list[Event], result: BatchResult) -> list[tuple[Event, Observation]]:
        observations = await self._observations.observe([(e.mint, e.ts) for e in events])
        kept = []
        for event, obs in zip(events, observations, strict=True):
            if obs is None:
                result.skips[Skip.NO_DATA] += 1
            elif not phase_allowed(self.model.settings, obs.row.phase_id_at_time):
                result.skips[Skip.PHASE] += 1
            else:
                kept.append((event, obs))
        return kept

    async def predict(self, observations: Sequence[Observation]) -> np.ndarray:
        """The runner's probabilities for the model's feature columns."""
        matrix = np.stack([obs.features for obs in observations])[:, self._columns].astype(np.float32)
        try:
            slot = self._slots.slot(
                self.model.name,
                self.model.settings.weight,
                hog=self._runner.hogging,
                expected_seconds=self._runner.expected_cpu_seconds(len(matrix)),
            )
            async with slot as lease:
                probabilities = await self._runner.predict(matrix, on_answer=lease.release)
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

    def _apply_rules(
        self, observed: list[tuple[Event, Observation]], probabilities: np.ndarray, result: BatchResult
    ) -> None:
        if not self._keeps_scan_cache:  # no rule reads a coin's past: every scored event is stored
            threshold = self.model.settings.alert_threshold
            for (event, obs), probability in zip(observed, probabilities.tolist(), strict=True):
                tag = tag_for(probability, threshold)
                result.predictions.append(
                    NewPrediction(event=event, row=obs.row, probability=probability, tag=tag)
                )
                self._queue_webhook(tag, None, obs, probability, result)
                result.last_probability = probability
            return
        for (event, obs), probability in zip(observed, probabilities.tolist(), strict=True):
            state = result.states.get(event.mint, self._states.get(event.mint))
            decision = decide(self.model.settings, state, event.ts, probability)
            if isinstance(decision, Skip):
                result.skips[decision] += 1
                continue
            self._take(decision, event, obs, probability, result)

    def _take(
        self, decision: Decision, event: Event, obs: Observation, probability: float, result: BatchResult
    ) -> None:
        result.states[event.mint] = decision.state
        result.last_probability = probability
        if decision.store:
            result.predictions.append(
                NewPrediction(event=event, row=obs.row, probability=probability, tag=decision.tag)
            )
        elif decision.suppressed is not None:
            result.skips[decision.suppressed] += 1
        suppressed = None if decision.store else decision.suppressed
        self._queue_webhook(decision.tag, suppressed, obs, probability, result)

    def _queue_webhook(
        self, tag: Tag, suppressed: Skip | None, obs: Observation, probability: float, result: BatchResult
    ) -> None:
        """Collect the prediction for the outbox when the model's send rules pick it."""
        url = route(
            self.model.settings, self._default_webhook_url, tag=tag, suppressed=suppressed is not None
        )
        if url is not None:
            result.outbox.append(
                OutboxItem(url=url, row=obs.row, probability=probability, tag=tag, suppressed=suppressed)
            )

    async def store_batch(self, result: BatchResult, cursor: Cursor) -> None:
        """Predictions, scan-cache changes, outbox rows and the cursor in one transaction: in the group
        commit with other lanes' batches, or alone on the lane's own connection when there is no group,
        the batch is large, or the group's write failed. Fenced, storing nothing, when the lane's lease
        passed to another worker or the stored cursor is no longer the lane's (the server lost a commit
        in a crash, an operator reset it): the lane stops and starts again from the stored cursor."""
        batch = Batch(
            model=self.model, predictions=result.predictions, states=result.states, cursor=cursor,
            keeps_scan_cache=self._keeps_scan_cache, outbox=result.outbox, epoch=self.epoch,
            after=self._cursor,
        )  # fmt: skip
        group = self._group
        if group is None or not group.takes(batch) or not await group.write(batch):
            await self._store_alone(batch)
        self._states.update(result.states)
        self._cursor = cursor

    async def _store_alone(self, batch: Batch) -> None:
        """Store on the lane's own connection. Predictions go in as a plain insert; one that repeats a
        stored coin and metric time (a metric row inserted twice) fails it, and the batch is stored
        again skipping repeats."""
        async with self._connection.use() as conn:
            await write_batches_or_skip_repeats(conn, [batch], skip_repeats=False)

    def _record_latencies(self, predictions: Sequence[NewPrediction]) -> None:
        inserted = np.fromiter((p.event.inserted_at.timestamp() for p in predictions), np.float64)
        seconds = self.stats.record_latencies(inserted, datetime.now(UTC).timestamp())
        telemetry.LATENCY.observe((self.model.name,), seconds)

    def _count(self, events: Sequence[Event], result: BatchResult) -> None:
        stats = self.stats
        stats.events += len(events)
        stats.scored += result.scored
        stats.batches += 1
        stats.last_batch_size = len(events)
        stats.skips.update(result.skips)
        tags = Counter(p.tag.value for p in result.predictions)
        stats.predictions.update(tags)
        name = self.model.name
        telemetry.EVENTS.labels(name).inc(len(events))
        telemetry.BATCH_SIZE.labels(name).observe(len(events))
        for tag, n in tags.items():
            telemetry.PREDICTIONS.labels(name, tag).inc(n)
        for reason, n in result.skips.items():
            telemetry.SKIPS.labels(name, reason).inc(n)
        if result.last_probability is not None:
            stats.last_probability = result.last_probability
