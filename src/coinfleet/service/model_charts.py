"""The numbers behind a model's statistics charts: hit rate over time by both outcome rules and the
probability histogram by tag. (Its calibration chart draws `service.quality.calibration`, the reliability
table `coinfleet stats` prints.)

They are computed from the model's newest `CHART_SAMPLE` predictions (in the window asked for), so a
model with a million stored predictions costs the same bounded read as one with fifty thousand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from coinfleet.db.sql import query
from coinfleet.service.common import Db, model_id_of
from coinfleet.service.schemas import Schema

#: most predictions one set of charts reads (the newest first)
CHART_SAMPLE = 20_000
TIME_BUCKETS = 30
HISTOGRAM_BINS = 20
TAGS = ("negative", "positive", "alert")


@dataclass(frozen=True, kw_only=True, slots=True)
class ChartRow:
    """One prediction as the charts see it."""

    metric_ts: datetime
    probability: float
    tag: str
    result_at_horizon: str | None  #: None while waiting
    result_within: str | None


class HitRates(Schema):
    """Hit rate per time bucket (start times), by both rules; None where nothing was judged."""

    buckets: list[datetime]
    at_horizon: list[float | None]
    within: list[float | None]


class Histogram(Schema):
    """Predictions per probability bin (edges has one more entry than each count list), by tag."""

    edges: list[float]
    counts: dict[str, list[int]]


class ModelCharts(Schema):
    """Everything the statistics tab draws, and how many predictions it was drawn from."""

    sample: int
    sample_capped: bool  #: the window held more than CHART_SAMPLE predictions: the newest were used
    hit_rates: HitRates
    histogram: Histogram


def _rate(results: Sequence[str | None]) -> float | None:
    judged = [r for r in results if r in ("success", "failed")]
    return sum(r == "success" for r in judged) / len(judged) if judged else None


def hit_rates(rows: Sequence[ChartRow], buckets: int = TIME_BUCKETS) -> HitRates:
    """Rows split into equal time buckets from the oldest to the newest metric time."""
    if not rows:
        return HitRates(buckets=[], at_horizon=[], within=[])
    start = min(r.metric_ts for r in rows)
    width = max((max(r.metric_ts for r in rows) - start) / buckets, timedelta(seconds=1))
    grouped: list[list[ChartRow]] = [[] for _ in range(buckets)]
    for row in rows:
        grouped[min(int((row.metric_ts - start) / width), buckets - 1)].append(row)
    return HitRates(
        buckets=[start + width * i for i in range(buckets)],
        at_horizon=[_rate([r.result_at_horizon for r in group]) for group in grouped],
        within=[_rate([r.result_within for r in group]) for group in grouped],
    )


def _bin(probability: float, bins: int) -> int:
    return min(math.floor(probability * bins), bins - 1)


def histogram(rows: Sequence[ChartRow], bins: int = HISTOGRAM_BINS) -> Histogram:
    """Counts per probability bin of width 1/bins, per tag."""
    counts = {tag: [0] * bins for tag in TAGS}
    for row in rows:
        counts.setdefault(row.tag, [0] * bins)[_bin(row.probability, bins)] += 1
    return Histogram(edges=[i / bins for i in range(bins + 1)], counts=counts)


async def model_charts(db: Db, name: str, *, since: datetime | None = None) -> ModelCharts:
    """The charts of the model called `name` over its newest predictions made at or after `since`."""
    model_id = await model_id_of(db, name)
    records = await db.fetch(query("chart_predictions"), model_id, since, CHART_SAMPLE + 1)
    rows = [
        ChartRow(
            metric_ts=r["metric_ts"], probability=r["probability"], tag=r["tag"],
            result_at_horizon=r["result_at_horizon"], result_within=r["result_within"],
        )
        for r in records[:CHART_SAMPLE]
    ]  # fmt: skip
    return ModelCharts(
        sample=len(rows),
        sample_capped=len(records) > CHART_SAMPLE,
        hit_rates=hit_rates(rows),
        histogram=histogram(rows),
    )
