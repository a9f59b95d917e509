"""`/metrics`: the lanes' counters of this process plus fleet gauges read from the database.

Lanes, runners' restarts, batch sizes and latencies are counted in the serving process (a runner child
only computes probabilities; its parent counts what it did), so the process's default registry holds
them all. What any process can see — model status, lag, evaluation backlog, outbox states, delivery
latency — is read from the database at scrape time (through the service layer's lanes, counts capped),
so `coinfleet api` alone serves it as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coinfleet.api.state import shared
from coinfleet.db.sql import query
from coinfleet.service import models
from coinfleet.service.schemas import COUNT_CAP, EXACT_LAG_EVENTS, Lane

router = APIRouter(tags=["health"])
#: seconds of webhook attempts the delivery latency gauges summarise
DELIVERY_WINDOW_SECONDS = 3600.0
STATUSES = ("active", "inactive", "quarantined")
#: the lanes' metrics text from the serving process (when the HTTP side runs in a process of its own)
LanesMetrics = Callable[[], Awaitable[bytes]]


class FleetSnapshot(Collector):
    """Gauges from rows read once per scrape."""

    def __init__(
        self, lanes: list[Lane], backlog: list[asyncpg.Record], delivery: list[asyncpg.Record]
    ) -> None:
        self._lanes = lanes
        self._backlog = backlog
        self._delivery = delivery

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Every fleet gauge."""
        yield from self._lane_gauges()
        backlog = GaugeMetricFamily(
            "coinfleet_evaluation_backlog", f"Predictions not evaluated yet (counted up to {COUNT_CAP})",
            labels=["model"],
        )  # fmt: skip
        for row in self._backlog:
            backlog.add_metric([row["name"]], row["open_predictions"])
        yield backlog
        latency = GaugeMetricFamily(
            "coinfleet_alert_delivery_latency_seconds",
            f"Webhook attempt latency over the last {DELIVERY_WINDOW_SECONDS:g} s, by quantile",
            labels=["model", "quantile"],
        )
        for row in self._delivery:
            latency.add_metric([row["name"], "0.5"], row["p50_ms"] / 1000)
            latency.add_metric([row["name"], "0.99"], row["p99_ms"] / 1000)
        yield latency

    def _lane_gauges(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "coinfleet_model_status", "1 for the model's current status", labels=["model", "status"]
        )
        quarantined = GaugeMetricFamily(
            "coinfleet_model_quarantined", "1 while quarantined", labels=["model"]
        )
        lag = GaugeMetricFamily(
            "coinfleet_model_lag_events",
            f"Events behind the cursor (exact to {EXACT_LAG_EVENTS}, then estimated; at most {COUNT_CAP})",
            labels=["model"],
        )
        lag_s = GaugeMetricFamily(
            "coinfleet_model_lag_seconds", "Seconds since the oldest event behind the cursor was inserted",
            labels=["model"],
        )  # fmt: skip
        alerts = GaugeMetricFamily(
            "coinfleet_alerts",
            f"Alerts in the outbox by state (counted up to {COUNT_CAP})",
            labels=["model", "state"],
        )
        for lane in self._lanes:
            for candidate in STATUSES:
                status.add_metric([lane.name, candidate], 1.0 if lane.status == candidate else 0.0)
            quarantined.add_metric([lane.name], 1.0 if lane.status == "quarantined" else 0.0)
            lag.add_metric([lane.name], lane.lag_events)
            lag_s.add_metric([lane.name], lane.lag_seconds)
            alerts.add_metric([lane.name, "pending"], lane.alerts_pending)
            alerts.add_metric([lane.name, "dead"], lane.alerts_dead)
        yield from (status, quarantined, lag, lag_s, alerts)


async def fleet_snapshot(pool: asyncpg.Pool) -> FleetSnapshot:
    """Read the fleet gauges (bounded queries)."""
    lanes = await models.lanes(pool)
    async with pool.acquire() as conn:
        backlog = await conn.fetch(query("fleet_evaluation_backlog"), COUNT_CAP)
        delivery = await conn.fetch(query("fleet_delivery_latency"), DELIVERY_WINDOW_SECONDS)
    return FleetSnapshot(lanes, backlog, delivery)


async def exposition(pool: asyncpg.Pool, lanes_metrics: LanesMetrics | None = None) -> bytes:
    """The Prometheus text of the lanes (this process's registry, or the serving process's) and the
    fleet gauges."""
    fleet = CollectorRegistry(auto_describe=False)
    fleet.register(await fleet_snapshot(pool))
    lanes = generate_latest(REGISTRY) if lanes_metrics is None else await lanes_metrics()
    return lanes + generate_latest(fleet)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Lane counters, latency histograms and fleet gauges, labelled by model."""
    lanes_metrics: LanesMetrics | None = request.app.state.lanes_metrics
    return Response(await exposition(shared(request).pool, lanes_metrics), media_type=CONTENT_TYPE_LATEST)
