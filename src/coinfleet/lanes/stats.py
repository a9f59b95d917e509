"""A lane's counters: events, predictions, skips, errors and recent latencies, for the demo table, the API
and the benchmarks; each batch is counted into Prometheus (telemetry) too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from coinfleet.events.cursor import Event
from coinfleet.lanes import telemetry
from coinfleet.lanes.batch import BatchResult
from coinfleet.lanes.store import NewPrediction

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


def count_latencies(stats: LaneStats, model: str, predictions: Sequence[NewPrediction]) -> None:
    """Predictions were committed just now: their latencies into the lane's samples and Prometheus."""
    inserted = np.fromiter((p.event.inserted_at.timestamp() for p in predictions), np.float64)
    seconds = stats.record_latencies(inserted, datetime.now(UTC).timestamp())
    telemetry.LATENCY.observe((model,), seconds)


def count_batch(stats: LaneStats, model: str, events: Sequence[Event], result: BatchResult) -> None:
    """Count a stored batch into the lane's counters and Prometheus."""
    stats.events += len(events)
    stats.scored += result.scored
    stats.batches += 1
    stats.last_batch_size = len(events)
    stats.skips.update(result.skips)
    tags = Counter(p.tag.value for p in result.predictions)
    stats.predictions.update(tags)
    telemetry.EVENTS.labels(model).inc(len(events))
    telemetry.BATCH_SIZE.labels(model).observe(len(events))
    for tag, n in tags.items():
        telemetry.PREDICTIONS.labels(model, tag).inc(n)
    for reason, n in result.skips.items():
        telemetry.SKIPS.labels(model, reason).inc(n)
    if result.last_probability is not None:
        stats.last_probability = result.last_probability
