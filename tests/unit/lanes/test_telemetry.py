"""The batch histogram exports what prometheus_client's own Histogram would for the same values."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from coinfleet.lanes.telemetry import BatchHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.1, 1.0)


def test_batches_count_like_one_value_at_a_time() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("lat_seconds", "latency", ["model"], buckets=BUCKETS, registry=ours)
    single = Histogram("lat_seconds", "latency", ["model"], buckets=BUCKETS, registry=theirs)
    values = np.random.default_rng(1).exponential(0.05, 500)
    values[:3] = (0.01, 1.0, 7.0)  # on a bound (counted in it) and above every bound
    for model, part in (("a", values[:200]), ("a", values[200:350]), ("b", values[350:])):
        batch.observe((model,), part)
        for value in part:
            single.labels(model).observe(value)
    for model in ("a", "b"):
        for bound in (*BUCKETS, float("inf")):
            le = "+Inf" if bound == float("inf") else str(bound)
            labels = {"model": model, "le": le}
            assert ours.get_sample_value("lat_seconds_bucket", labels) == theirs.get_sample_value(
                "lat_seconds_bucket", labels
            )
        for suffix in ("_count", "_sum"):
            got = ours.get_sample_value("lat_seconds" + suffix, {"model": model})
            want = theirs.get_sample_value("lat_seconds" + suffix, {"model": model})
            assert got is not None and want is not None and abs(got - want) < 1e-9


def test_an_empty_batch_changes_nothing_but_appears() -> None:
    registry = CollectorRegistry()
    batch = BatchHistogram("lat_seconds", "latency", ["model"], buckets=BUCKETS, registry=registry)
    batch.observe(("a",), np.empty(0))
    assert registry.get_sample_value("lat_seconds_count", {"model": "a"}) == 0
