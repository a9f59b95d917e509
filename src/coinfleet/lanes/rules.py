"""The scoring rules of one model, pure: filters before scoring, tags and suppression after.

A lane replays these rules event by event in (tx, seq) order, so a batch gives exactly what scoring
the events one at a time would give. `definitely_skipped` only prunes events that the sequential
rules are sure to skip, so that work is not spent on them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from coinfleet.models.settings import ModelSettings


class Tag(StrEnum):
    """The three result bands of a probability."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    ALERT = "alert"


class Skip(StrEnum):
    """Why an event was not scored or a prediction not stored; every one is counted."""

    COIN_FILTER = "coin_filter"
    PHASE = "phase"
    MIN_INTERVAL = "min_interval"
    IGNORE_WINDOW = "ignore_window"
    LOG_LIMIT = "log_limit"
    STALE = "stale"
    SUPERSEDED = "superseded"
    NO_DATA = "no_data"
    BAD_TIME = "bad_time"  #: dated ahead of the wall clock (beyond the tolerance) or at ±infinity
    MODEL_FAILED = "model_failed"  #: the model fails on this row alone (set aside, see the lane)


def tag_for(probability: float, alert_threshold: float) -> Tag:
    """p < 0.5 → negative; 0.5 ≤ p < threshold → positive; p ≥ threshold → alert."""
    if probability >= alert_threshold:
        return Tag.ALERT
    if probability >= 0.5:
        return Tag.POSITIVE
    return Tag.NEGATIVE


@dataclass(kw_only=True, slots=True)
class CoinState:
    """What a model remembers about one coin (the scan cache)."""

    last_scan_ts: datetime
    last_probability: float
    last_tag: Tag
    ignore_until: datetime | None = None
    ignore_reason: Tag | None = None
    stored_negative: int = 0
    stored_positive: int = 0
    stored_alert: int = 0

    def stored(self, tag: Tag) -> int:
        """How many predictions with this tag are stored for the coin."""
        if tag is Tag.NEGATIVE:
            return self.stored_negative
        return self.stored_positive if tag is Tag.POSITIVE else self.stored_alert


def coin_allowed(settings: ModelSettings, mint: str) -> bool:
    """The whitelist / blacklist rule."""
    if settings.coin_filter_mode == "whitelist":
        return mint in settings.coin_whitelist
    if settings.coin_filter_mode == "blacklist":
        return mint not in settings.coin_blacklist
    return True


def phase_allowed(settings: ModelSettings, phase: int | None) -> bool:
    """The phase rule: no phase list allows every phase; a coin without a phase passes only then."""
    return settings.phases is None or phase in settings.phases


def too_soon(settings: ModelSettings, state: CoinState | None, ts: datetime) -> bool:
    """The minimum scan interval, in data time; none when it is 0 (a row older than the coin's last
    scan is then scored too, as by a lane that keeps no scan cache)."""
    if state is None or not settings.min_scan_interval_seconds:
        return False
    return ts - state.last_scan_ts < settings.scan_interval


def ignored(state: CoinState | None, ts: datetime) -> bool:
    """Inside the ignore window set by an earlier result."""
    return state is not None and state.ignore_until is not None and ts < state.ignore_until


def definitely_skipped(
    settings: ModelSettings, state: CoinState | None, mint: str, ts: datetime
) -> Skip | None:
    """A skip that holds whatever the batch's earlier events turn out to be."""
    if not coin_allowed(settings, mint):
        return Skip.COIN_FILTER
    if too_soon(settings, state, ts):
        return Skip.MIN_INTERVAL
    if ignored(state, ts) and not settings.send_ignored:
        return Skip.IGNORE_WINDOW
    return None


@dataclass(kw_only=True, slots=True)
class Decision:
    """What to do with one scored event."""

    tag: Tag
    store: bool  #: write a prediction row
    suppressed: Skip | None  #: why it was not stored (ignore window or log limit)
    state: CoinState  #: the coin's state after this event


#: per tag: the setting that opens its ignore window, and the one that caps its stored predictions
_IGNORE_SETTING = {
    Tag.ALERT: "ignore_alert_seconds",
    Tag.POSITIVE: "ignore_positive_seconds",
    Tag.NEGATIVE: "ignore_bad_seconds",
}
_LIMIT_SETTING = {
    Tag.ALERT: "max_log_entries_alert",
    Tag.POSITIVE: "max_log_entries_positive",
    Tag.NEGATIVE: "max_log_entries_negative",
}


def _after_result(
    base: CoinState, settings: ModelSettings, ts: datetime, probability: float, tag: Tag, store: bool
) -> CoinState:
    """The coin's state after a scored (not ignored) result; built once, this runs for every event."""
    window: float = getattr(settings, _IGNORE_SETTING[tag])
    return CoinState(
        last_scan_ts=ts,
        last_probability=probability,
        last_tag=tag,
        ignore_until=ts + timedelta(seconds=window) if window > 0 else None,
        ignore_reason=tag if window > 0 else None,
        stored_negative=base.stored_negative + (store and tag is Tag.NEGATIVE),
        stored_positive=base.stored_positive + (store and tag is Tag.POSITIVE),
        stored_alert=base.stored_alert + (store and tag is Tag.ALERT),
    )


def decide(
    settings: ModelSettings, state: CoinState | None, ts: datetime, probability: float
) -> Decision | Skip:
    """Apply the sequential rules to one scored event: a Skip if it would not have been scored."""
    if too_soon(settings, state, ts):
        return Skip.MIN_INTERVAL
    tag = tag_for(probability, settings.alert_threshold)
    if ignored(state, ts):
        if not settings.send_ignored:
            return Skip.IGNORE_WINDOW
        assert state is not None
        scanned = replace(state, last_scan_ts=ts, last_probability=probability, last_tag=tag)
        return Decision(tag=tag, store=False, suppressed=Skip.IGNORE_WINDOW, state=scanned)
    base = state or CoinState(last_scan_ts=ts, last_probability=probability, last_tag=tag)
    limit: int = getattr(settings, _LIMIT_SETTING[tag])
    store = not limit or base.stored(tag) < limit
    after = _after_result(base, settings, ts, probability, tag, store)
    return Decision(tag=tag, store=store, suppressed=None if store else Skip.LOG_LIMIT, state=after)
