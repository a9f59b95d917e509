"""The alert threshold a trained model ships with, chosen from its validation predictions.

A fixed threshold means nothing across models: one trained with class weights puts most of its
probabilities above 0.7, another almost none. The threshold is instead the lowest one at which at most
`ALERT_SHARE` of the validation predictions would alert, so an operator gets a known, small share of
alerts from the start (and can move it with `coinfleet models set NAME alert_threshold=…`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: share of validation predictions a new model's threshold lets alert
ALERT_SHARE = 0.05
#: the settings' range of alert thresholds (below 0.5 a prediction is not even positive)
LOWEST, HIGHEST = 0.5, 1.0
#: thresholds are rounded up to this many decimals (rounding up keeps the share at most ALERT_SHARE)
DECIMALS = 4


@dataclass(frozen=True, kw_only=True)
class AlertThreshold:
    """A threshold and what it gives on the validation predictions it was chosen from."""

    threshold: float
    target_share: float  #: the share asked for
    validation_share: float  #: share of validation predictions at or above the threshold
    validation_precision: float | None  #: share of those that were hits (None: no alert)
    n_validation: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready, for the model's training metrics."""
        return {
            "threshold": self.threshold,
            "target_share": self.target_share,
            "validation_share": self.validation_share,
            "validation_precision": self.validation_precision,
            "n_validation": self.n_validation,
        }


def threshold_for_share(probabilities: npt.NDArray[np.float64], share: float = ALERT_SHARE) -> float:
    """The lowest threshold in [0.5, 1] at which at most `share` of `probabilities` are at or above it."""
    if not 0 <= share < 1:
        raise ValueError(f"share must be in [0, 1), not {share}")
    if len(probabilities) == 0:
        return HIGHEST
    allowed = math.floor(share * len(probabilities))
    descending = np.sort(probabilities)[::-1]
    if allowed >= len(descending):
        return LOWEST
    # the highest probability that must not alert: the threshold is the next step of DECIMALS above it
    quiet = float(descending[allowed])
    step = 10**-DECIMALS
    rounded = round((math.floor(quiet / step) + 1) * step, DECIMALS)
    if rounded <= quiet:  # the division landed a hair low
        rounded = round(rounded + step, DECIMALS)
    return float(min(max(rounded, LOWEST), HIGHEST))


def alert_threshold(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], share: float = ALERT_SHARE
) -> AlertThreshold:
    """The threshold for `share` of the validation predictions, and what it gives on them."""
    threshold = threshold_for_share(probabilities, share)
    alerts = probabilities >= threshold
    n = len(probabilities)
    return AlertThreshold(
        threshold=threshold,
        target_share=share,
        validation_share=float(alerts.mean()) if n else 0.0,
        validation_precision=float(labels[alerts].mean()) if alerts.any() else None,
        n_validation=n,
    )
