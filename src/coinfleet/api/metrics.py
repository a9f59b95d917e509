"""`/metrics`: the lanes' counters of this process plus fleet gauges read from the database.

Lanes, runners' restarts, batch sizes and latencies are counted in the serving process (a runner child
only computes probabilities; its parent counts what it did), so the process's default registry holds
them all. What any process can see — model status, lag, evaluation backlog, outbox states, delivery
latency — is read from the database at scrape time, so `coinfleet api` alone serves it as well.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coinfleet.api.state import shared
from coinfleet.db.sql import query

router = APIRouter(tags=["health"])
#: seconds of webhook attempts the delivery latency gauges summarise
DELIVERY_WINDOW_SECONDS = 3600.0
STATUSES = ("active", "inactive", "quarantined")


class FleetSnapshot(Collector):
    """Gauges from rows read once per scrape."""

    def __init__(
        self, models: list[asyncpg.Record], alerts: list[asyncpg.Record], delivery: list[asyncpg.Record]
    ) -> None:
        self._models = models
        self._alerts = alerts
        self._delivery = delivery

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Every fleet gauge."""
        yield from self._model_gauges()
        alerts = GaugeMetricFamily(
            "coinfleet_alerts", "Alerts in the outbox by state", labels=["model", "state"]
        )
        for row in self._alerts:
            alerts.add_metric([row["name"], row["state"]], row["alerts"])
        yield alerts
        latency = GaugeMetricFamily(
            "coinfleet_alert_delivery_latency_seconds",
            f"Webhook attempt latency over the last {DELIVERY_WINDOW_SECONDS:g} s, by quantile",
            labels=["model", "quantile"],
        )
        for row in self._delivery:
            latency.add_metric([row["name"], "0.5"], row["p50_ms"] / 1000)
            latency.add_metric([row["name"], "0.99"], row["p99_ms"] / 1000)
        yield latency

    def _model_gauges(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "coinfleet_model_status", "1 for the model's current status", labels=["model", "status"]
        )
        quarantined = GaugeMetricFamily(
            "coinfleet_model_quarantined", "1 while quarantined", labels=["model"]
        )
        lag = GaugeMetricFamily(
            "coinfleet_model_lag_events", "Events behind the model's cursor", labels=["model"]
        )
        lag_s = GaugeMetricFamily(
            "coinfleet_model_lag_seconds", "Seconds since the oldest event behind the cursor was inserted",
            labels=["model"],
        )  # fmt: skip
        backlog = GaugeMetricFamily(
            "coinfleet_evaluation_backlog", "Predictions not evaluated yet", labels=["model"]
        )
        for row in self._models:
            name = row["name"]
            for candidate in STATUSES:
                status.add_metric([name, candidate], 1.0 if row["status"] == candidate else 0.0)
            quarantined.add_metric([name], 1.0 if row["status"] == "quarantined" else 0.0)
            lag.add_metric([name], row["lag_events"])
            lag_s.add_metric([name], row["lag_seconds"])
            backlog.add_metric([name], row["open_predictions"])
        yield from (status, quarantined, lag, lag_s, backlog)


async def fleet_snapshot(pool: asyncpg.Pool) -> FleetSnapshot:
    """Read the fleet gauges (three bounded queries)."""
    async with pool.acquire() as conn:
        models = await conn.fetch(query("fleet_gauges"))
        alerts = await conn.fetch(query("fleet_alert_states"))
        delivery = await conn.fetch(query("fleet_delivery_latency"), DELIVERY_WINDOW_SECONDS)
    return FleetSnapshot(models, alerts, delivery)


async def exposition(pool: asyncpg.Pool) -> bytes:
    """The Prometheus text of this process's registry and the fleet gauges."""
    fleet = CollectorRegistry(auto_describe=False)
    fleet.register(await fleet_snapshot(pool))
    return generate_latest(REGISTRY) + generate_latest(fleet)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Lane counters, latency histograms and fleet gauges, labelled by model."""
    return Response(await exposition(shared(request).pool), media_type=CONTENT_TYPE_LATEST)
