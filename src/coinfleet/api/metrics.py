"""`/metrics`: the lanes' counters of this process plus fleet gauges read from the database, served
from a snapshot.

Lanes, runners' restarts, batch sizes and latencies are counted in the serving process (a runner child
only computes probabilities; its parent counts what it did), so the process's default registry holds
them all. What any process can see — model status, lag, evaluation backlog, outbox states, delivery
latency — is read from the database at scrape time (through the service layer's lanes, counts capped),
so `coinfleet api` alone serves it as well.

A scrape reads nothing itself: it gets the last snapshot, which a background task reads again every
SNAPSHOT_SECONDS while someone scrapes (only a scrape after a long pause waits for a read) — so
scrapers, however many and however often, cost the lanes' process and the database at most one read per
SNAPSHOT_SECONDS. `coinfleet_metrics_snapshot_age_seconds` says how old the served one is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coinfleet.db.sql import query
from coinfleet.service import models
from coinfleet.service.schemas import COUNT_CAP, EXACT_LAG_EVENTS, Lane

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])
#: seconds between two reads of the snapshot while someone scrapes
SNAPSHOT_SECONDS = 5.0
#: seconds after the last scrape that the snapshot is still refreshed (and served without a new read)
IDLE_SECONDS = 60.0
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


class Snapshots:
    """The metrics text, read in the background every SNAPSHOT_SECONDS while someone scrapes.

    A scrape returns the last snapshot at once. The refresher runs while the last scrape is at most
    IDLE_SECONDS old; a scrape that finds no snapshot, or one older than that (nobody scraped for a
    while), waits for a fresh read — one read however many scrapers wait."""

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self._read = read
        self._text: bytes | None = None
        self._taken = 0.0  #: monotonic time the served snapshot's read began
        self._scraped = 0.0  #: monotonic time of the last scrape
        self._fresh: asyncio.Task[None] | None = None  #: the read a scrape waits for
        self._refresher: asyncio.Task[None] | None = None

    async def latest(self) -> bytes:
        """The last snapshot with its age (a fresh one when there is none or it is too old)."""
        self._scraped = time.monotonic()
        if self._text is None or self._scraped - self._taken > IDLE_SECONDS:
            if self._fresh is None or self._fresh.done():
                self._fresh = asyncio.create_task(self._refresh())
            await asyncio.shield(self._fresh)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._keep_fresh(), name="metrics-snapshots")
        assert self._text is not None  # set by the read just awaited
        return _with_age(self._text, time.monotonic() - self._taken)

    def close(self) -> None:
        """Stop refreshing."""
        for task in (self._fresh, self._refresher):
            if task is not None:
                task.cancel()

    async def _keep_fresh(self) -> None:
        while time.monotonic() - self._scraped < IDLE_SECONDS:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            try:
                await self._refresh()
            except Exception as exc:  # the database or the serving process is away: keep the last one
                log.warning("metrics_snapshot_failed", error=str(exc))

    async def _refresh(self) -> None:
        began = time.monotonic()
        text = await self._read()
        self._text, self._taken = text, began


def _with_age(text: bytes, age: float) -> bytes:
    return (
        text
        + (
            "# HELP coinfleet_metrics_snapshot_age_seconds Seconds since the served metrics were read\n"
            "# TYPE coinfleet_metrics_snapshot_age_seconds gauge\n"
            f"coinfleet_metrics_snapshot_age_seconds {age:.3f}\n"
        ).encode()
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Lane counters, latency histograms and fleet gauges, labelled by model, from a snapshot at most
    a few seconds old (`coinfleet_metrics_snapshot_age_seconds`)."""
    snapshots: Snapshots = request.app.state.metrics
    return Response(await snapshots.latest(), media_type=CONTENT_TYPE_LATEST)
