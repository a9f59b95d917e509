"""Outcome rules: what happened to a coin after a prediction. Shared by training labels and evaluation.

A prediction is made at time t0 (epoch seconds) with close price p0; the horizon ends at
end = t0 + horizon_seconds, and its outcome is settled at end + grace. The rules, for the coin's rows
with t ≥ t0 and the feed's rows of every coin:

- pending: until the coin has a row in [end, end + grace] or the feed's clock has passed end + grace.
- horizon observation (as of the end): the coin's LAST row with t0 ≤ t ≤ end. On a bonding curve the
  price only moves with trades, so a coin without a later row still has that price at the end: a coin
  that was rugged and then went quiet is judged on its collapsed price, not dropped.
- status "no_data" only when the feed itself wrote no row of any coin in [end, end + grace] (a stall:
  a missing row then says nothing about trades) or the coin has no row at or after t0 up to the end.
- change at horizon end: close of the horizon observation vs p0, in %.
- within the horizon: the rows with t0 < t ≤ end. Max change uses their highs, min change their lows;
  the times are those of the first row reaching the extreme.
- change target: hit within when max change ≥ +X % (up) or min change ≤ −X % (down); reached at
  horizon when the change at horizon end passes the same bound. Exactly at the bound counts.
- classic target: `variable operator value` on the horizon observation (reached at horizon) or on any
  row within the horizon (hit within); "=" allows a 1e-12 relative difference.
- p0 zero, negative, NaN or missing → status "invalid_price", nothing else is judged.

The SQL of evaluation (`evaluate_due`) applies exactly these rules; a test compares both on random paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from coinfleet.metrics import NUMERIC_COLUMNS, MetricRow
from coinfleet.targets import TargetSpec

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
OutcomeStatus = Literal["ok", "no_data", "invalid_price", "pending"]
LabelMode = Literal["within", "at_horizon"]

#: slack for "exactly at the threshold counts": % changes computed from float prices are off by ~1e-14
THRESHOLD_SLACK_PCT = 1e-9
#: seconds after the horizon end the feed has to show it was alive (COINFLEET_EVALUATION_GRACE_SECONDS)
DEFAULT_GRACE_SECONDS = 120.0
#: relative tolerance of the classic "=" operator
EQUAL_REL_TOL = 1e-12
#: path columns that come from the price arrays rather than `PricePath.columns`
_PRICE_COLUMNS = {"price_high": "high", "price_low": "low", "price_close": "close"}


@dataclass(frozen=True, kw_only=True, eq=False)
class PricePath:
    """A coin's rows from the prediction on (t ≥ t0), oldest → newest, as arrays."""

    t: FloatArray  #: epoch seconds
    high: FloatArray
    low: FloatArray
    close: FloatArray
    columns: Mapping[str, FloatArray] = field(
        default_factory=dict
    )  #: other numeric columns (classic targets)


@dataclass(frozen=True, kw_only=True, eq=False)
class FeedTimes:
    """When the feed wrote rows of any coin (sorted epoch seconds), and the clock outcomes are settled at."""

    t: FloatArray
    clock: float  #: the data clock (newest row), or later once the feed has stalled

    @classmethod
    def of(cls, times: Sequence[float] | FloatArray, *, clock: float | None = None) -> FeedTimes:
        """The feed that wrote rows at `times` (any order); its clock defaults to the newest of them."""
        t = np.unique(np.asarray(times, dtype=np.float64))
        if clock is None:
            clock = float(t[-1]) if len(t) else -math.inf
        return cls(t=t, clock=clock)

    def wrote_between(self, start: float, stop: float) -> bool:
        """Whether some row of any coin has start ≤ t ≤ stop."""
        return _wrote_between(self.t, start, stop)

    def stalls(self, grace_seconds: float) -> list[tuple[float, float]]:
        """(last row before, first row after) of every silence longer than `grace_seconds`: a horizon
        ending at a time in (before, after − grace) has no row of any coin in [end, end + grace], so its
        prediction is `no_data` whatever the coin did."""
        gaps = np.flatnonzero(np.diff(self.t) > grace_seconds)
        return [(float(self.t[i]), float(self.t[i + 1])) for i in gaps]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What happened within and at the end of a prediction's horizon; times are epoch seconds."""

    status: OutcomeStatus
    change_at_horizon_pct: float | None = None  #: close of the horizon observation vs p0
    horizon_observed_at: float | None = None  #: time of the coin's last row at or before the horizon end
    reached_at_horizon: bool | None = None  #: target holds on the horizon observation
    hit_within: bool | None = None  #: target reached by some row in (t0, t0 + horizon]
    hit_at: float | None = None  #: time of the first such row
    max_change_pct: float | None = None  #: highest high in (t0, t0 + horizon] vs p0
    max_change_at: float | None = None
    min_change_pct: float | None = None  #: lowest low in (t0, t0 + horizon] vs p0
    min_change_at: float | None = None


def evaluate_outcome(
    *,
    t0: float,
    p0: float | None,
    path: PricePath,
    target: TargetSpec,
    feed: FeedTimes | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> Outcome:
    """Judge one prediction made at t0 with close p0 against the coin's rows from t0 on.

    `feed` is every coin's row times; None stands for a feed that never stalled and whose clock is
    past every horizon (only the coin's own rows matter then)."""
    if p0 is None or not math.isfinite(p0) or p0 <= 0:
        return Outcome(status="invalid_price")
    end = t0 + target.horizon_seconds
    deadline = end + grace_seconds
    coin_seen = _wrote_between(path.t, end, deadline)
    if not coin_seen and feed is not None and feed.clock <= deadline:
        return Outcome(status="pending")
    within = slice(
        int(np.searchsorted(path.t, t0, side="right")), int(np.searchsorted(path.t, end, side="right"))
    )
    with np.errstate(over="ignore", invalid="ignore"):  # absurd prices give inf/NaN changes, not warnings
        seen = _within_horizon(path, within, p0, target)
    horizon = within.stop - 1
    alive = coin_seen or feed is None or feed.wrote_between(end, deadline)
    if not alive or horizon < 0 or path.t[horizon] < t0:
        return seen
    change = _pct(float(path.close[horizon]), p0)
    change_pct = None if math.isnan(change) else change
    return replace(
        seen,
        status="ok",
        change_at_horizon_pct=change_pct,
        horizon_observed_at=float(path.t[horizon]),
        reached_at_horizon=_reached_at_horizon(path, horizon, change_pct, target),
    )


def _wrote_between(t: FloatArray, start: float, stop: float) -> bool:
    i = int(np.searchsorted(t, start, side="left"))
    return i < len(t) and bool(t[i] <= stop)


def label_for_training(outcome: Outcome, mode: LabelMode) -> int | None:
    """1 / 0 label of an outcome, or None when it cannot be judged (no data, invalid price, NaN)."""
    if outcome.status != "ok":
        return None
    value = outcome.hit_within if mode == "within" else outcome.reached_at_horizon
    return None if value is None else int(value)


def path_from_rows(rows: Sequence[MetricRow], *, since: datetime, columns: Sequence[str] = ()) -> PricePath:
    """The price path of one coin's rows at or after `since` (the prediction time), sorted by time."""
    unknown = [name for name in columns if name not in NUMERIC_COLUMNS]
    if unknown:
        raise ValueError(f"unknown metric columns {unknown}; use names from coin_metrics")
    later = sorted((row for row in rows if row.timestamp >= since), key=lambda row: row.timestamp)
    return PricePath(
        t=np.array([row.timestamp.timestamp() for row in later], dtype=np.float64),
        high=_column(later, "price_high"),
        low=_column(later, "price_low"),
        close=_column(later, "price_close"),
        columns={name: _column(later, name) for name in columns},
    )


def _column(rows: Sequence[MetricRow], name: str) -> FloatArray:
    return np.array([np.nan if (v := getattr(row, name)) is None else v for row in rows], dtype=np.float64)


def _pct(price: float, p0: float) -> float:
    return (price / p0 - 1.0) * 100.0


def _within_horizon(path: PricePath, within: slice, p0: float, target: TargetSpec) -> Outcome:
    """What the rows in (t0, t0 + horizon] show, as a "no_data" outcome the horizon observation completes."""
    hit_within, hit_at = _hit_within(path, within, p0, target)
    seen = Outcome(status="no_data", hit_within=hit_within, hit_at=hit_at)
    highs, lows, t = path.high[within], path.low[within], path.t[within]
    if not np.any(np.isfinite(highs)) or not np.any(np.isfinite(lows)):
        return seen
    top, bottom = int(np.nanargmax(highs)), int(np.nanargmin(lows))
    return replace(
        seen,
        max_change_pct=_pct(float(highs[top]), p0),
        max_change_at=float(t[top]),
        min_change_pct=_pct(float(lows[bottom]), p0),
        min_change_at=float(t[bottom]),
    )


def _hit_within(path: PricePath, within: slice, p0: float, target: TargetSpec) -> tuple[bool, float | None]:
    if target.kind == "classic":
        hits = _classic_holds(_variable(path, target)[within], target)
    elif target.direction == "up":
        hits = _reaches(_pct_array(path.high[within], p0), target)
    else:
        hits = _reaches(_pct_array(path.low[within], p0), target)
    if not np.any(hits):
        return False, None
    return True, float(path.t[within][int(np.argmax(hits))])


def _reached_at_horizon(
    path: PricePath, horizon: int, change: float | None, target: TargetSpec
) -> bool | None:
    """Whether the target holds on the horizon observation; None when its value is missing."""
    value = float(_variable(path, target)[horizon]) if target.kind == "classic" else change
    if value is None or math.isnan(value):
        return None
    holds = _classic_holds if target.kind == "classic" else _reaches
    return bool(holds(np.array([value]), target)[0])


def _pct_array(prices: FloatArray, p0: float) -> FloatArray:
    return (prices / p0 - 1.0) * 100.0


def _reaches(changes_pct: FloatArray, target: TargetSpec) -> BoolArray:
    """Whether each % change reaches the change target; NaN never does."""
    bound = float(target.change_percent or 0.0)
    if target.direction == "up":
        return np.asarray(changes_pct >= bound - THRESHOLD_SLACK_PCT)
    return np.asarray(changes_pct <= -bound + THRESHOLD_SLACK_PCT)


def _variable(path: PricePath, target: TargetSpec) -> FloatArray:
    name = target.variable or ""
    if name in _PRICE_COLUMNS:
        values: FloatArray = getattr(path, _PRICE_COLUMNS[name])
        return values
    if name not in path.columns:
        raise ValueError(f"classic target needs column {name!r} in the price path; pass it in `columns`")
    return path.columns[name]


def _classic_holds(values: FloatArray, target: TargetSpec) -> BoolArray:
    """`values operator value` per element; NaN never holds."""
    value = float(target.value if target.value is not None else math.nan)
    if target.operator == ">":
        return np.asarray(values > value)
    if target.operator == "<":
        return np.asarray(values < value)
    if target.operator == ">=":
        return np.asarray(values >= value)
    if target.operator == "<=":
        return np.asarray(values <= value)
    return np.asarray(np.abs(values - value) <= EQUAL_REL_TOL * np.maximum(np.abs(values), abs(value)))
