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
from coinfleet.constants import CURSOR_MOVED_SQLSTATE
from coinfleet.db.database import OwnConnection
from coinfleet.db.outage import Outage, is_outage
from coinfleet.errors import Fenced
from coinfleet.events.cursor import INFINITY, NEGATIVE_INFINITY, Cursor, Event, load_cursor
from coinfleet.events.feed import IdlePause, Signal
from coinfleet.events.log import EventLog
from coinfleet.features.cache import Observation, ObservationService, feature_indices
from coinfleet.lanes import telemetry
from coinfleet.lanes.group_commit import GroupCommit
from coinfleet.lanes.rules import (
    CoinState,
    Decision,
    Skip,
    Tag,
    decide,
    definitely_skipped,
    phase_allowed,
    tag_for,
)
from coinfleet.lanes.store import (
    Batch,
    NewPrediction,
    SetAside,
    load_states,
    write_batches_or_skip_repeats,
)
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.runners.hogs import HogGate
from coinfleet.runners.protocol import (
    BAD_OUTPUT,
    CRASH,
    LOAD,
    MEMORY,
    TIMEOUT,
    Runner,
    RunnerError,
    failure_reason,
)
from coinfleet.runners.slots import FairSlots

log = structlog.get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
DEFAULT_FUTURE_TOLERANCE = timedelta(seconds=30)  #: see Settings.future_tolerance_seconds
NO_CURSOR = Cursor(tx=0, seq=0)  #: before the lane's first load
#: runner failures no single row is blamed for: a timeout or the memory limit is the model's (or the
#: machine's) doing, and a crash is not searched for a row (each try would restart the model's process);
#: an exception the model raised or a non-finite probability makes the lane split the batch
NOT_ROW_FAILURES = frozenset({TIMEOUT, MEMORY, LOAD, CRASH})
#: most events one batch sets aside as failing for the model; a batch with more failed as a whole
MAX_SET_ASIDE = 8
Pairing = tuple[Event, Observation]  #: an event and what the feature service observed at it
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
    #: events not scored for this model, stored with the reason
    set_aside: list[SetAside] = field(default_factory=list)


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


def _cursor_moved(exc: Exception) -> bool:
    """Whether a store failed because the stored cursor is not where the lane left it."""
    return getattr(exc, "sqlstate", None) == CURSOR_MOVED_SQLSTATE


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
        future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
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
        self._cursor = NO_CURSOR
        self._future_tolerance = future_tolerance
        self._witness: Observation | None = None  #: a row the model scored last (see _witness_scores)
        self._reload = True  #: load the cursor (and scan cache) from the database before the next batch
        self._outage = Outage(f"lane:{model.name}")
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
        try:
            await self._run_batches()
        finally:
            await self._runner.close()
            await self._connection.close()

    async def _run_batches(self) -> None:
        failures = 0  #: in a row, of any kind: paces the retries
        # only the model's own failures count towards quarantine (a database outage must not), and
        # over a window of recent batches, so a model that crashes every few batches is caught too
        recent: deque[bool] = deque(maxlen=FAILURE_WINDOW)
        while not self._stopping.is_set():
            try:
                handled = await self.step()
                failures = 0
                self._outage.succeeded()
                if handled:
                    recent.append(False)
                    self._pause.reset()
            except Fenced as exc:  # another worker owns the model now: nothing of the batch was stored
                log.warning("lane_fenced", model=self.model.name, epoch=self.epoch, error=str(exc))
                self.fenced = True
                break
            except Exception as exc:  # one model's failure never leaves its lane
                if not isinstance(exc, RunnerError):
                    self._reload = True  # the database may have lost this lane's last commits
                if is_outage(exc):
                    await self._back_off(self._outage.failed(exc))
                    continue
                if _cursor_moved(exc):
                    log.warning("cursor_behind_lane", model=self.model.name, error=str(exc))
                    continue
                failures += 1
                recent.append(isinstance(exc, RunnerError))
                self._record_error(exc)
                if await self._quarantine_if_due(sum(recent), exc):
                    break
                await self._back_off(min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** max(failures, sum(recent))))
                continue
            if not handled:
                await self._signal.wait(self._pause.seconds(held_back=self._events.held_back(self._cursor)))

    async def _back_off(self, seconds: float) -> None:
        """Wait before retrying a failed batch; new events do not cut this short (they would make a
        crashing model restart at the feed's pace), only `stop` does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _load(self) -> None:
        """(Re)load the stored cursor, and with it the scan cache when the lane keeps one: after an error
        either may lie behind what this lane last stored (a crash lost commits not flushed yet)."""
        async with self._pool.acquire() as conn:
            cursor = await load_cursor(conn, self.model.id)
        if cursor != self._cursor and self._cursor != NO_CURSOR:
            log.warning("cursor_reloaded", model=self.model.name, was=str(self._cursor), now=str(cursor))
        self._cursor = cursor
        self._keeps_scan_cache = False  # `_follow_settings` loads it again if the rules read it
        self._reload = False

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
        if self._reload:
            await self._load()
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
        timely = self._set_aside_bad_times(events, result)
        candidates = select_candidates(settings, self._states, timely, result.skips) if timely else []
        observed = await self._observe(candidates, result)
        if observed:
            observed, probabilities = await self._predict_or_set_aside(observed, result)
            result.scored = len(observed)
            self._apply_rules(observed, probabilities, result)
        return result

    def _set_aside_bad_times(self, events: Sequence[Event], result: BatchResult) -> list[Event]:
        """The events dated no further ahead of the wall clock than the tolerance; the others (±infinity
        too) are set aside: scored, they would become the coin's scan time and evaluation's clock."""
        limit = datetime.now(UTC) + self._future_tolerance
        kept = []
        for event in events:
            if event.ts <= limit and event.ts != NEGATIVE_INFINITY:
                kept.append(event)
                continue
            result.skips[Skip.BAD_TIME] += 1
            result.set_aside.append(SetAside(event=event, reason=Skip.BAD_TIME, detail=self._bad_time(event)))
        return kept

    def _bad_time(self, event: Event) -> str:
        if event.ts == INFINITY:
            return "dated at infinity"
        if event.ts == NEGATIVE_INFINITY:
            return "dated at -infinity"
        return f"dated {event.ts.isoformat()}, more than {self._future_tolerance} ahead of the wall clock"

    async def _predict_or_set_aside(
        self, observed: list[Pairing], result: BatchResult
    ) -> tuple[list[Pairing], np.ndarray]:
        """The model's probabilities for the batch. When the batch fails in a way one row can cause, it
        is split until the failing rows are found; they are set aside for this model and the rest is
        scored. When the model fails on the last row it scored too, on every row, or on more than a
        few rows, the model is at fault and the batch fails as before (towards quarantine)."""
        try:
            probabilities = await self.predict([obs for _, obs in observed])
        except RunnerError as exc:
            if exc.reason in NOT_ROW_FAILURES or not await self._witness_scores():
                raise
            scored: list[tuple[Pairing, float]] = []
            failed: list[tuple[Pairing, RunnerError]] = []
            await self._bisect(observed, scored, failed)
            if not scored and self._witness is None:
                raise
            for (event, _), error in failed:
                self._set_aside_failed(event, error, result)
            observed = [pair for pair, _ in scored]
            probabilities = np.array([p for _, p in scored], dtype=np.float64)
        if observed:
            self._witness = observed[-1][1]
        return observed, probabilities

    async def _bisect(
        self,
        observed: list[Pairing],
        scored: list[tuple[Pairing, float]],
        failed: list[tuple[Pairing, RunnerError]],
    ) -> None:
        """Score both halves of a failed batch, splitting each failing half again: the rows scored go to
        `scored` with their probabilities, the single rows that fail to `failed` with their error. More
        than MAX_SET_ASIDE failing rows raise the last error: that is the model, not its input (and the
        search stays within ~2·MAX_SET_ASIDE·log2(rows) calls)."""
        half = len(observed) // 2
        for part in (observed[:half], observed[half:]) if half else (observed,):
            try:
                probabilities = await self.predict([obs for _, obs in part])
            except RunnerError as exc:
                if exc.reason in NOT_ROW_FAILURES or len(failed) >= MAX_SET_ASIDE:
                    raise
                if len(part) == 1:
                    failed.append((part[0], exc))
                else:
                    await self._bisect(part, scored, failed)
                continue
            scored.extend(zip(part, probabilities.tolist(), strict=True))

    async def _witness_scores(self) -> bool:
        """Whether the model still scores the last row it scored, so that a row failing alone is at fault
        (True before it scored any: then the search itself must find a row that scores)."""
        if self._witness is None:
            return True
        try:
            await self.predict([self._witness])
        except RunnerError:
            return False
        return True

    def _set_aside_failed(self, event: Event, error: RunnerError, result: BatchResult) -> None:
        detail = f"{error.reason}: {error}"
        log.warning("event_set_aside", model=self.model.name, mint=event.mint, ts=str(event.ts), error=detail)
        result.skips[Skip.MODEL_FAILED] += 1
        result.set_aside.append(SetAside(event=event, reason=Skip.MODEL_FAILED, detail=detail))

    async def _observe(self, events: list[Event], result: BatchResult) -> list[Pairing]:
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

    def _apply_rules(self, observed: list[Pairing], probabilities: np.ndarray, result: BatchResult) -> None:
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
        wall = datetime.now(UTC)  # a coin's scan time never lies ahead of the wall clock
        for (event, obs), probability in zip(observed, probabilities.tolist(), strict=True):
            state = result.states.get(event.mint, self._states.get(event.mint))
            decision = decide(self.model.settings, state, min(event.ts, wall), probability)
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
        passed to another worker (the lane stops; the model starts again wherever it is owned now);
        a CURSOR_MOVED error when the stored cursor is no longer the lane's (the server lost a commit
        in a crash, an operator reset it): the lane reloads it and scores from there."""
        batch = Batch(
            model=self.model, predictions=result.predictions, states=result.states, cursor=cursor,
            keeps_scan_cache=self._keeps_scan_cache, outbox=result.outbox, expected=self._cursor,
            set_aside=result.set_aside, epoch=self.epoch,
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
