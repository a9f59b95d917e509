"""Prometheus gauges of outcome quality, labelled by model (served by `/metrics`)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import Gauge

FEATURE_PSI = Gauge(
    "coinfleet_model_feature_psi",
    "Population stability index of a model's recent scored feature values against its training sample",
    ["model", "feature"],
)
DRIFTED_FEATURES = Gauge(
    "coinfleet_model_drifted_features", "Features of a model whose PSI is over the drift threshold", ["model"]
)


def record_drift(model: str, psi_by_feature: Mapping[str, float | None], threshold: float) -> None:
    """Set the gauges from one drift computation; a feature without a PSI (too few rows) is removed."""
    for feature, value in psi_by_feature.items():
        if value is None:
            _forget(model, feature)
        else:
            FEATURE_PSI.labels(model=model, feature=feature).set(value)
    drifted = sum(1 for value in psi_by_feature.values() if value is not None and value > threshold)
    DRIFTED_FEATURES.labels(model=model).set(drifted)


def _forget(model: str, feature: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        FEATURE_PSI.remove(model, feature)
