"""Prometheus metrics of the lanes, labelled by model (served later by `/metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

#: how prometheus_client writes a bucket's bound (the library leaves it untyped)
_bound_label = cast(Callable[[float], str], floatToGoString)


class BatchHistogram:
    """A labelled histogram fed a whole batch of values at once.

    prometheus_client's Histogram takes one value per call, each under a lock: for the latency of
    every prediction that was 5–7 % of the serving process's CPU at high load. This one counts a batch
    into its buckets with numpy and is exported like any histogram (a custom collector).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self._bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._bound_labels = [_bound_label(b) for b in self._bounds.tolist()] + ["+Inf"]
        self._counts: dict[tuple[str, ...], npt.NDArray[np.int64]] = {}
        self._sums: dict[tuple[str, ...], float] = {}
        if registry is not None:
            registry.register(self)

    def observe(self, labels: tuple[str, ...], values: npt.ArrayLike) -> None:
        """Count every value under these label values."""
        array = np.asarray(values, dtype=np.float64)
        counts = self._counts.get(labels)
        if counts is None:
            counts = self._counts[labels] = np.zeros(len(self._bounds) + 1, dtype=np.int64)
            self._sums[labels] = 0.0
        # bucket i holds values in (bound[i-1], bound[i]]; the last one those above every bound
        counts += np.bincount(np.searchsorted(self._bounds, array, side="left"), minlength=len(counts))
        self._sums[labels] += float(array.sum())

    def describe(self) -> list[HistogramMetricFamily]:
        """The family without samples (for the registry's name check)."""
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The cumulative buckets, count and sum per label values."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, counts in list(self._counts.items()):
            buckets = list(zip(self._bound_labels, np.cumsum(counts).tolist(), strict=True))
            family.add_metric(list(labels), buckets, self._sums[labels])
        yield family


EVENTS = Counter("coinfleet_lane_events", "Events a model's cursor has passed", ["model"])
PREDICTIONS = Counter("coinfleet_lane_predictions", "Predictions stored", ["model", "tag"])
SKIPS = Counter(
    "coinfleet_lane_skips", "Events not scored or predictions not stored, by reason", ["model", "reason"]
)
ERRORS = Counter("coinfleet_lane_errors", "Failed batches, by reason", ["model", "reason"])
BATCH_SIZE = Histogram(
    "coinfleet_lane_batch_size",
    "Events per batch",
    ["model"],
    buckets=(1, 5, 20, 50, 100, 250, 500, 1000, 2000, 5000),
)
LATENCY = BatchHistogram(
    "coinfleet_lane_latency_seconds",
    "Metric row inserted → prediction committed",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG_EVENTS = Gauge("coinfleet_lane_lag_events", "Events behind the model's cursor", ["model"])
