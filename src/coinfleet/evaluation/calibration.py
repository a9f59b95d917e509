"""Calibration of predicted probabilities: the Brier score and a reliability table.

One definition for training (the validation split, from arrays) and live statistics (sums per bucket,
computed by SQL): a probability p falls into bucket min(floor(p × buckets), buckets − 1), so bucket k
of 10 holds [k/10, (k+1)/10) and the last one also holds 1.0. The Brier score is the mean of
(p − label)² over every judged prediction (0 is perfect; always saying 0.5 scores 0.25).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: reliability table buckets of equal width over [0, 1]
DEFAULT_BUCKETS = 10


@dataclass(frozen=True, kw_only=True)
class BucketSums:
    """What one bucket holds, as sums (SQL aggregates them, numpy for training)."""

    bucket: int
    count: int
    sum_probability: float
    sum_label: float  #: how many of them hit (labels are 0/1)
    sum_squared_error: float  #: Σ (p − label)²


@dataclass(frozen=True, kw_only=True)
class ReliabilityRow:
    """One bucket of the reliability table: predicted probability range → observed hit rate."""

    lower: float
    upper: float
    count: int
    mean_probability: float
    hit_rate: float


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Brier score and reliability table of a set of judged predictions."""

    count: int
    brier: float | None  #: None without judged predictions
    base_rate: float | None  #: share of labels that are 1
    table: tuple[ReliabilityRow, ...]  #: non-empty buckets only, lowest first

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the table as a list)."""
        return {**asdict(self), "table": [asdict(row) for row in self.table]}


def bucket_of(probabilities: npt.ArrayLike, buckets: int = DEFAULT_BUCKETS) -> npt.NDArray[np.int64]:
    """The bucket of each probability (the SQL uses the same expression)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return np.minimum(np.floor(p * buckets), buckets - 1).astype(np.int64)


def calibration(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, buckets: int = DEFAULT_BUCKETS
) -> Calibration:
    """Calibration of probabilities against 0/1 labels of the same length."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} probabilities but {len(y)} labels; pass one label per probability")
    which = bucket_of(p, buckets)
    sums = [
        BucketSums(
            bucket=k,
            count=int(np.sum(which == k)),
            sum_probability=float(np.sum(p[which == k])),
            sum_label=float(np.sum(y[which == k])),
            sum_squared_error=float(np.sum((p[which == k] - y[which == k]) ** 2)),
        )
        for k in np.unique(which).tolist()
    ]
    return calibration_from_sums(sums, buckets)


def calibration_from_sums(sums: Iterable[BucketSums], buckets: int = DEFAULT_BUCKETS) -> Calibration:
    """Calibration from per-bucket sums (empty buckets may be left out)."""
    kept = sorted((s for s in sums if s.count), key=lambda s: s.bucket)
    count = sum(s.count for s in kept)
    if not count:
        return Calibration(count=0, brier=None, base_rate=None, table=())
    return Calibration(
        count=count,
        brier=sum(s.sum_squared_error for s in kept) / count,
        base_rate=sum(s.sum_label for s in kept) / count,
        table=tuple(_row(s, buckets) for s in kept),
    )


def _row(sums: BucketSums, buckets: int) -> ReliabilityRow:
    return ReliabilityRow(
        lower=sums.bucket / buckets,
        upper=(sums.bucket + 1) / buckets,
        count=sums.count,
        mean_probability=sums.sum_probability / sums.count,
        hit_rate=sums.sum_label / sums.count,
    )
