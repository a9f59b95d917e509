"""Labelled training rows: features at every row of every coin, labels from evaluation's outcome rule.

Features come from the same catalogue and windows as serving; labels from the same outcome rules as
evaluation, with the recorded rows of every coin as the feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from coinfleet.errors import CoinfleetError
from coinfleet.evaluation.outcomes import (
    DEFAULT_GRACE_SECONDS,
    FeedTimes,
    LabelMode,
    Outcome,
    PricePath,
    evaluate_outcome,
    label_for_training,
)
from coinfleet.features.spec import compute_matrix
from coinfleet.features.window import WINDOW_ROWS, windows_from_history
from coinfleet.metrics import MetricRow
from coinfleet.targets import TargetSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class TrainingError(CoinfleetError):
    """The data cannot train a model (too few rows, one class) or the export does not reproduce it."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Dataset:
    """Labelled feature rows of many coins, one per prediction time."""

    x: FloatArray  #: features [n, len(features)]
    y: IntArray  #: labels 0/1
    t0: FloatArray  #: prediction time, epoch seconds
    label_end: FloatArray  #: time of the last row the label read (horizon end + grace: the feed check)
    change_pct: FloatArray  #: change at horizon end, % (for the simulated profit)
    age: FloatArray  #: seconds since the coin's first row in the data


def build_dataset(
    rows: Iterable[MetricRow],
    *,
    target: TargetSpec,
    features: Sequence[str],
    label_mode: LabelMode,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> Dataset:
    """Features at every row of every coin and its label; rows without a label are dropped. Labels are
    the outcomes evaluation would store, with the recorded rows of every coin as the feed."""
    coins = _by_coin(rows)
    if not coins:
        raise TrainingError("no rows to train on")
    feed = FeedTimes.of([row.timestamp.timestamp() for coin in coins for row in coin])
    parts = [_coin_dataset(coin, target, features, label_mode, feed, grace_seconds) for coin in coins]
    return Dataset(
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        t0=np.concatenate([p.t0 for p in parts]),
        label_end=np.concatenate([p.label_end for p in parts]),
        change_pct=np.concatenate([p.change_pct for p in parts]),
        age=np.concatenate([p.age for p in parts]),
    )


def _by_coin(rows: Iterable[MetricRow]) -> list[list[MetricRow]]:
    """Rows grouped per coin, sorted by time; a repeated (mint, timestamp) keeps its last row."""
    coins: dict[str, dict[datetime, MetricRow]] = {}
    for row in rows:
        coins.setdefault(row.mint, {})[row.timestamp] = row
    return [[bars[ts] for ts in sorted(bars)] for bars in coins.values()]


def _coin_dataset(
    rows: Sequence[MetricRow],
    target: TargetSpec,
    features: Sequence[str],
    label_mode: LabelMode,
    feed: FeedTimes,
    grace_seconds: float,
) -> Dataset:
    windows = list(windows_from_history(rows, WINDOW_ROWS))
    outcomes = outcomes_at_every_row(rows, target=target, feed=feed, grace_seconds=grace_seconds)
    labelled = [
        (window, outcome, label)
        for window, outcome in zip(windows, outcomes, strict=True)
        if (label := label_for_training(outcome, label_mode)) is not None
    ]
    settled = target.horizon_seconds + grace_seconds
    return Dataset(
        x=compute_matrix([window for window, _, _ in labelled], features),
        y=np.array([label for _, _, label in labelled], dtype=np.int64),
        t0=np.array([window.t[-1] for window, _, _ in labelled], dtype=np.float64),
        label_end=np.array([window.t[-1] + settled for window, _, _ in labelled], dtype=np.float64),
        change_pct=np.array(
            [_nan_if_none(o.change_at_horizon_pct) for _, o, _ in labelled], dtype=np.float64
        ),
        age=np.array([window.t[-1] for window, _, _ in labelled], dtype=np.float64)
        - (rows[0].timestamp.timestamp() if rows else 0.0),
    )


def outcomes_at_every_row(
    rows: Sequence[MetricRow], *, target: TargetSpec, feed: FeedTimes, grace_seconds: float
) -> list[Outcome]:
    """The outcome evaluation gives a prediction at every row of one coin (rows sorted by time), from the
    coin's real later rows and the feed's row times: the one rule for labels and evaluation."""
    t = np.array([row.timestamp.timestamp() for row in rows], dtype=np.float64)
    high, low, close = (np.array([getattr(row, name) for row in rows], dtype=np.float64) for name in _PRICES)
    extra = {}
    if target.kind == "classic" and target.variable and target.variable not in _PRICES:
        extra[target.variable] = np.array(
            [np.nan if (v := getattr(row, target.variable)) is None else v for row in rows], dtype=np.float64
        )
    outcomes = []
    for i in range(len(rows)):
        since = PricePath(
            t=t[i:],
            high=high[i:],
            low=low[i:],
            close=close[i:],
            columns={name: values[i:] for name, values in extra.items()},
        )
        outcome = evaluate_outcome(
            t0=float(t[i]),
            p0=float(close[i]),
            path=since,
            target=target,
            feed=feed,
            grace_seconds=grace_seconds,
        )
        outcomes.append(outcome)
    return outcomes


_PRICES = ("price_high", "price_low", "price_close")


def _nan_if_none(value: float | None) -> float:
    return np.nan if value is None else value
