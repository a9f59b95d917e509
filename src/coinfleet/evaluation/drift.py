"""Feature drift: the population stability index (PSI) of live feature values against a training sample.

At training time each feature's train values are summarised as a `FeatureReference`: the deciles of
its finite values as bin edges (repeated edges merged, so a flag has two or three bins), the share of
values in each bin, and the share of missing values (NaN), which is a bin of its own. That summary is
stored with the model (its training metrics), so the raw sample never has to be kept.

Live values are counted into the same bins, and
PSI = Σ over bins (live share − train share) × ln(live share / train share),
with every share floored at `SHARE_FLOOR` so an empty bin gives a large but finite term. Reading:
below 0.1 stable, 0.1–0.2 moderate shift, above `PSI_THRESHOLD` (0.2) shifted — flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: PSI above this flags a feature as drifted (the usual "significant shift" reading)
PSI_THRESHOLD = 0.2
#: quantiles of the training values that become bin edges
REFERENCE_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: smallest share a bin counts with, so an empty bin does not make the logarithm infinite
SHARE_FLOOR = 1e-4
#: fewer live values than this give no PSI (too noisy to flag anything)
MIN_LIVE_VALUES = 30


@dataclass(frozen=True, kw_only=True)
class FeatureReference:
    """One feature's training distribution: bin edges, the share per bin, and the share missing."""

    edges: tuple[float, ...]  #: ascending; bin i holds edges[i-1] ≤ v < edges[i] (open at both ends)
    shares: tuple[float, ...]  #: len(edges) + 1 shares of the finite values' bins
    missing: float  #: share of NaN values

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as stored with the model."""
        return {"edges": list(self.edges), "shares": list(self.shares), "missing": self.missing}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReference:
        """The reference as stored with the model; ValueError when it does not fit together."""
        edges = tuple(float(v) for v in data["edges"])
        shares = tuple(float(v) for v in data["shares"])
        if len(shares) != len(edges) + 1 or list(edges) != sorted(edges):
            raise ValueError("a drift reference needs ascending edges and one share more than edges")
        return cls(edges=edges, shares=shares, missing=float(data["missing"]))


def reference_of(values: npt.ArrayLike) -> FeatureReference:
    """The training distribution of one feature's values."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    edges = np.unique(np.quantile(finite, REFERENCE_QUANTILES)) if len(finite) else np.zeros(0)
    counts = _bin_counts(edges, v[~np.isnan(v)])
    n = max(len(v), 1)
    return FeatureReference(
        edges=tuple(edges.tolist()),
        shares=tuple((counts / n).tolist()),
        missing=float(np.sum(np.isnan(v)) / n),
    )


def references_of(x: FloatArray, features: Sequence[str]) -> dict[str, FeatureReference]:
    """The reference of every feature (column of x, in `features` order)."""
    if x.ndim != 2 or x.shape[1] != len(features):
        raise ValueError(f"x has shape {x.shape}; need one column per feature ({len(features)})")
    return {name: reference_of(x[:, j]) for j, name in enumerate(features)}


def psi(reference: FeatureReference, values: npt.ArrayLike) -> float | None:
    """PSI of live values against the reference; None with fewer than MIN_LIVE_VALUES values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < MIN_LIVE_VALUES:
        return None
    present = v[~np.isnan(v)]
    live = np.append(_bin_counts(np.asarray(reference.edges), present), len(v) - len(present)) / len(v)
    train = np.append(np.asarray(reference.shares), reference.missing)
    live, train = np.maximum(live, SHARE_FLOOR), np.maximum(train, SHARE_FLOOR)
    return float(np.sum((live - train) * np.log(live / train)))


def _bin_counts(edges: FloatArray, present: FloatArray) -> FloatArray:
    """How many non-NaN values fall in each of the len(edges) + 1 bins (±inf in the outer bins)."""
    which = np.searchsorted(edges, present, side="right")
    return np.bincount(which, minlength=len(edges) + 1).astype(np.float64)
