"""Statistics per model, backtest reports and outcome quality (coverage, the former rule, calibration,
drift)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from coinfleet.service.schemas.common import Schema, Status


class Statistics(Schema):
    """Statistics of one model, or of all of them, over predictions made in a window.

    Rates count only judged predictions: "not_applicable" results are left out of every denominator.
    """

    model_id: int | None  #: None for the row across every model
    name: str | None
    status: Status | None
    predictions: int
    by_tag: dict[str, int]  #: negative / positive / alert
    evaluated: int
    pending: int
    by_status: dict[str, int]  #: ok / no_data / invalid_price
    by_result_at_horizon: dict[str, int]  #: success / failed
    by_result_within: dict[str, int]  #: success / failed
    hit_rate_at_horizon: float | None  #: success / (success + failed), judged at the horizon end
    hit_rate_within: float | None  #: the same, judged by "target hit at any time within the horizon"
    alert_precision_at_horizon: float | None  #: alerts whose target was reached at the horizon end
    alert_precision_within: float | None  #: alerts whose target was hit within the horizon
    alert_gain_avg_pct: float | None  #: mean change at horizon end after alerts, in the target's direction
    #: read from 0.1-point bins of the gains (rollups keep per bin a count and sum, not each gain): within
    #: 0.1 of the exact median, exact when the middle gains are alone in their bins
    alert_gain_median_pct: float | None


class StatisticsReport(Schema):
    """Per-model statistics and the same across models."""

    since: datetime | None  #: None: all time
    models: list[Statistics]
    overall: Statistics


class Coverage(Schema):
    """What became of a model's predictions whose horizon ended by a clock (a backtest: the file's end)."""

    model_id: int
    name: str
    ended: int  #: horizon ended at or before the clock
    judged: int  #: status ok
    no_data: int  #: the feed stalled around the horizon end
    invalid_price: int
    pending: int  #: not settled yet (end + grace not passed and no later row of the coin)
    running: int  #: horizon runs past the clock
    judged_share: float | None  #: judged / ended


class RuleComparison(Schema):
    """One model's rates as of the horizon end beside the former rule (first row in [end, end + grace],
    no_data without one), over outcomes judged as of the horizon end."""

    model_id: int
    name: str
    judged: int  #: status ok, as of the horizon end
    judged_former: int  #: the coin had a row in [end, end + grace]
    hit_rate_at_horizon: float | None
    hit_rate_at_horizon_former: float | None
    hit_rate_within: float | None
    hit_rate_within_former: float | None
    alert_precision_at_horizon: float | None
    alert_precision_at_horizon_former: float | None
    alert_precision_within: float | None
    alert_precision_within_former: float | None


class FeedStall(Schema):
    """A silence of the replayed rows longer than the grace period: no row of any coin from `last_row` to
    `next_row`. A prediction whose horizon ends in (last_row, next_row − grace) is `no_data` under any
    rule."""

    last_row: datetime  #: the last row before the silence (the file's own time)
    next_row: datetime  #: the first row after it
    seconds: float


class BacktestReport(Schema):
    """What a backtest gave: statistics per model and every prediction with its outcome."""

    rows: int  #: metric rows replayed
    grace_seconds: float  #: the evaluation grace period the outcomes were judged with
    models: list[Statistics]
    outcomes: list[dict[str, Any]]  #: one per prediction, times in seconds after the first row
    coverage: list[Coverage] = Field(
        default_factory=list
    )  #: of the predictions whose horizon ended inside the rows
    rules: list[RuleComparison] = Field(default_factory=list)  #: as of the horizon end beside the former rule
    stalls: list[FeedStall] = Field(default_factory=list)  #: the rows' silences longer than the grace period


class ReliabilityBucket(Schema):
    """One bucket of a reliability table: predicted probability range → observed hit rate."""

    lower: float
    upper: float
    count: int
    mean_probability: float
    hit_rate: float


class CalibrationFigures(Schema):
    """Brier score and reliability table of a set of judged predictions."""

    count: int  #: judged predictions
    brier: float | None  #: mean (p − label)²; 0 is perfect, always 0.5 scores 0.25
    base_rate: float | None  #: share of labels that are 1
    table: list[ReliabilityBucket]  #: non-empty buckets, lowest first


class CalibrationReport(CalibrationFigures):
    """A model's Brier score and reliability table over its judged predictions in a window, beside the
    same figures on its training's validation split (live vs training is one comparison)."""

    model_id: int
    name: str
    validation: CalibrationFigures | None = None  #: None for a model not trained by coinfleet


class FeatureDrift(Schema):
    """One feature's PSI of recent scored rows against the model's training sample."""

    feature: str
    psi: float | None  #: None with too few scored rows
    drifted: bool  #: PSI above the threshold


class DriftReport(Schema):
    """A model's feature drift, worst first; `note` says why there is none."""

    model_id: int
    name: str
    hours: float  #: scored rows of this many hours before the model's newest prediction
    rows: int
    threshold: float
    features: list[FeatureDrift]
    drifted: list[str]  #: the flagged features, worst first
    note: str | None = None
