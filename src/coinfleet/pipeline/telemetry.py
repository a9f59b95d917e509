"""Prometheus metrics of the lanes, labelled by model (served later by `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
LATENCY = Histogram(
    "coinfleet_lane_latency_seconds",
    "Metric row inserted → prediction committed",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG_EVENTS = Gauge("coinfleet_lane_lag_events", "Events behind the model's cursor", ["model"])
RESTARTS = Counter("coinfleet_runner_restarts", "Runner processes started again after a failure", ["model"])
