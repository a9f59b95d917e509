"""The overview's reads: models and lanes every refresh, statistics and deliveries less often, and the
counters of lanes running in this process.

Lane state comes from the database, so the overview works in `coinfleet api` too. Events handled and
runner restarts are counted by the lanes in memory (Prometheus counters), read from the serving
process's metrics (or this process's registry); where no lanes can be seen they are None and the
throughput falls back to stored predictions per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coinfleet.errors import ModelNotFound
from coinfleet.service import alerts as alert_reads
from coinfleet.service import models as model_reads
from coinfleet.service import stats as stat_reads
from coinfleet.service.schemas import AlertQuery, Model, Statistics
from coinfleet.ui import context
from coinfleet.ui.live import Shared

log = structlog.get_logger(__name__)

#: seconds between reads of statistics and last deliveries (aggregates, dearer than lane state)
SLOW_REFRESH_SECONDS = 30.0
#: the overview's statistics cover this much data time before the newest prediction (from the hour's start)
STATS_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, kw_only=True)
class Record:
    """A model's record over the statistics window, and its newest delivered alert."""

    stats: Statistics | None
    last_delivery: datetime | None
    read: bool = True  #: False until the first background read has finished (nothing known yet)


#: what a card shows before the first read of the records has finished
NOT_READ = Record(stats=None, last_delivery=None, read=False)


@dataclass(frozen=True, kw_only=True)
class FleetRow:
    """What the overview shows of one model."""

    model: Model
    record: Record
    events: int | None  #: events its lane in this process has passed (None: no lane here)
    restarts: int | None  #: runner restarts in this process (None: no lane here)

    @property
    def weight(self) -> float:
        """The model's weight setting."""
        return float(self.model.settings.get("weight", 1.0))


def stats_since(models: list[Model]) -> datetime | None:
    """Start of the statistics window: the start of the hour (UTC) STATS_WINDOW before the newest
    prediction of any model. On a whole hour the statistics read only the hourly rollups and the live
    tail; a window starting inside an hour also reads that hour's predictions, for every card."""
    newest = [m.lane.last_prediction_at for m in models if m.lane.last_prediction_at is not None]
    if not newest:
        return None
    start = (max(newest) - STATS_WINDOW).astimezone(UTC)
    return start.replace(minute=0, second=0, microsecond=0)


async def _record(db: asyncpg.Pool, model: Model, since: datetime | None) -> Record:
    """One model's statistics over the window and its newest delivery: a statement per model, so each
    reads one model's predictions (one statement over 20 models × 1M predictions took 77 s on the busy
    2-core machine, past the 60 s statement timeout: the cards never got their record)."""
    try:
        report = await stat_reads.statistics(db, since=since, model=model.name)
        delivered = await alert_reads.list_alerts(
            db, AlertQuery(model=model.name, state="delivered", limit=1)
        )
    except ModelNotFound:  # renamed or deleted since the list was read: the next read shows it
        return Record(stats=None, last_delivery=None)
    last = delivered.items[0].delivered_at if delivered.items else None
    return Record(stats=report.models[0] if report.models else None, last_delivery=last)


async def _records() -> dict[int, Record]:
    db = context.pool()
    models = await model_reads.list_models(db)
    since = stats_since(models)
    return {model.id: await _record(db, model, since) for model in models}


RECORDS = Shared(_records, max_age=SLOW_REFRESH_SECONDS)


EVENTS = "coinfleet_lane_events_total"
RESTARTS = "coinfleet_runner_restarts_total"


async def lane_counters() -> dict[tuple[str, str], int]:
    """(counter, model) → value of the lanes' event and restart counters, from the serving process's
    metrics endpoint or this process's registry; empty when no lanes run where we can see them."""
    source = context.current().lane_metrics
    try:
        text = (await source() if source is not None else generate_latest(REGISTRY)).decode()
    except Exception as exc:  # the overview shows the rest; counters come back with the next read
        log.warning("ui_lane_metrics_unavailable", error=str(exc))
        return {}
    return {
        (sample.name, sample.labels["model"]): int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in (EVENTS, RESTARTS) and "model" in sample.labels
    }


def _restarts(counters: dict[tuple[str, str], int], model: str) -> int | None:
    """A lane that counts events but never restarted its runner has no restart sample yet: 0."""
    if (RESTARTS, model) in counters:
        return counters[(RESTARTS, model)]
    return 0 if (EVENTS, model) in counters else None


async def fleet() -> list[FleetRow]:
    """Every model with its lane, record and the lanes' counters."""
    models = await model_reads.list_models(context.pool())
    records = RECORDS.latest()
    counters = await lane_counters()
    return [
        FleetRow(
            model=m,
            record=NOT_READ if records is None else records.get(m.id, Record(stats=None, last_delivery=None)),
            events=counters.get((EVENTS, m.name)),
            restarts=_restarts(counters, m.name),
        )
        for m in models
    ]
