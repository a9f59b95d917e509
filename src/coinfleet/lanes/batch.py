"""Scoring one batch of a lane (no writes): filters → shared features → the model → the rules.

Events dated too far ahead are set aside; the backlog policy, staleness and definite skips drop events
before any feature is built; the rules then replay the model's settings event by event and collect
the predictions to store and the alerts its send rules pick for the outbox."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from coinfleet.alerts.outbox import OutboxItem
from coinfleet.alerts.rules import route
from coinfleet.events.cursor import INFINITY, NEGATIVE_INFINITY, Event
from coinfleet.features.cache import Observation, ObservationService
from coinfleet.lanes.calls import ModelCalls, Pairing
from coinfleet.lanes.position import LanePosition
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
from coinfleet.lanes.store import NewPrediction, SetAside
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings


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


class BatchScorer:
    """Turns a lane's batch of events into predictions, scan-cache changes and outbox rows."""

    def __init__(
        self,
        *,
        observations: ObservationService,
        calls: ModelCalls,
        position: LanePosition,
        default_webhook_url: str | None,
        future_tolerance: timedelta,
    ) -> None:
        self._observations = observations
        self._calls = calls
        self._position = position
        self._default_webhook_url = default_webhook_url
        self._future_tolerance = future_tolerance

    async def score(self, model: ModelRecord, events: Sequence[Event]) -> BatchResult:
        """Filter, build features, predict and apply the rules to a batch (no writes)."""
        result = BatchResult()
        timely = self._set_aside_bad_times(events, result)
        states = self._position.states
        candidates = select_candidates(model.settings, states, timely, result.skips) if timely else []
        observed = await self._observe(model, candidates, result)
        if observed:
            before = len(result.set_aside)
            observed, probabilities = await self._calls.predict_or_set_aside(
                model, observed, result.set_aside
            )
            if failed := len(result.set_aside) - before:
                result.skips[Skip.MODEL_FAILED] += failed
            result.scored = len(observed)
            self._apply_rules(model, observed, probabilities, result)
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

    async def _observe(self, model: ModelRecord, events: list[Event], result: BatchResult) -> list[Pairing]:
        observations = await self._observations.observe([(e.mint, e.ts) for e in events])
        kept = []
        for event, obs in zip(events, observations, strict=True):
            if obs is None:
                result.skips[Skip.NO_DATA] += 1
            elif not phase_allowed(model.settings, obs.row.phase_id_at_time):
                result.skips[Skip.PHASE] += 1
            else:
                kept.append((event, obs))
        return kept

    def _apply_rules(
        self, model: ModelRecord, observed: list[Pairing], probabilities: np.ndarray, result: BatchResult
    ) -> None:
        scored = zip(observed, probabilities.tolist(), strict=True)
        if not self._position.keeps_scan_cache:  # no rule reads a coin's past: every scored event is stored
            threshold = model.settings.alert_threshold
            for (event, obs), probability in scored:
                tag = tag_for(probability, threshold)
                result.predictions.append(
                    NewPrediction(event=event, row=obs.row, probability=probability, tag=tag)
                )
                self._queue_webhook(model, tag, None, obs, probability, result)
                result.last_probability = probability
            return
        wall = datetime.now(UTC)  # a coin's scan time never lies ahead of the wall clock
        for (event, obs), probability in scored:
            state = result.states.get(event.mint, self._position.states.get(event.mint))
            decision = decide(model.settings, state, min(event.ts, wall), probability)
            if isinstance(decision, Skip):
                result.skips[decision] += 1
                continue
            self._take(model, decision, (event, obs), probability, result)

    def _take(
        self, model: ModelRecord, decision: Decision, pair: Pairing, probability: float, result: BatchResult
    ) -> None:
        event, obs = pair
        result.states[event.mint] = decision.state
        result.last_probability = probability
        if decision.store:
            result.predictions.append(
                NewPrediction(event=event, row=obs.row, probability=probability, tag=decision.tag)
            )
        elif decision.suppressed is not None:
            result.skips[decision.suppressed] += 1
        suppressed = None if decision.store else decision.suppressed
        self._queue_webhook(model, decision.tag, suppressed, obs, probability, result)

    def _queue_webhook(
        self,
        model: ModelRecord,
        tag: Tag,
        suppressed: Skip | None,
        obs: Observation,
        probability: float,
        result: BatchResult,
    ) -> None:
        """Collect the prediction for the outbox when the model's send rules pick it."""
        url = route(model.settings, self._default_webhook_url, tag=tag, suppressed=suppressed is not None)
        if url is not None:
            result.outbox.append(
                OutboxItem(url=url, row=obs.row, probability=probability, tag=tag, suppressed=suppressed)
            )
