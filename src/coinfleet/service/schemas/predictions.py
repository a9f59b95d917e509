"""Stored predictions, their evaluations, and the query that lists them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from coinfleet.service.schemas.common import (
    DEFAULT_PAGE_SIZE,
    EvaluationState,
    PageSize,
    Result,
    Rule,
    Schema,
    Tag,
    check_range,
)


class Evaluation(Schema):
    """The settled outcome of a prediction (docs/evaluation.md defines each field)."""

    status: Literal["ok", "no_data", "invalid_price"]
    result_at_horizon: Result  #: judged by the change at the horizon end
    result_within: Result  #: judged by "target hit at any time within the horizon"
    price_at_horizon: float | None
    change_at_horizon_pct: float | None
    hit_within: bool | None
    hit_at: datetime | None
    evaluated_at: datetime


class Prediction(Schema):
    """One stored prediction with its evaluation state."""

    id: int
    model_id: int
    model_name: str
    model_version: int
    mint: str
    metric_ts: datetime  #: bar time of the metric row it scored
    probability: float
    prediction: int  #: 1 when probability ≥ 0.5
    tag: Tag
    alert_threshold: float
    target: dict[str, Any]  #: the target as it was when predicted
    evaluate_at: datetime  #: the horizon end: the evaluation window is [metric_ts, evaluate_at]
    phase_id: int | None
    price_open: float | None
    price_high: float | None
    price_low: float | None
    price_close: float | None
    market_cap_close: float | None
    volume_sol: float | None
    created_at: datetime
    state: EvaluationState
    max_change_pct: float | None  #: highest change since the prediction (so far, while waiting)
    max_change_at: datetime | None
    min_change_pct: float | None  #: lowest change since the prediction (so far, while waiting)
    min_change_at: datetime | None
    evaluation: Evaluation | None  #: None while waiting


class PredictionQuery(Schema):
    """Which predictions to list: every filter is optional; bounds are inclusive, `until` exclusive."""

    model: str | None = None  #: model name
    mint: str | None = None  #: coin id
    tag: Tag | None = None
    state: EvaluationState | None = None  #: waiting (no outcome yet) or evaluated
    result: Result | None = None  #: an outcome, judged by `rule`
    rule: Rule = "horizon"
    probability_min: float | None = Field(default=None, ge=0, le=1)
    probability_max: float | None = Field(default=None, ge=0, le=1)
    ath_min: float | None = None  #: highest change since the prediction, %
    ath_max: float | None = None
    change_min: float | None = None  #: change at the horizon end, %
    change_max: float | None = None
    since: AwareDatetime | None = None  #: metric time ≥ since
    until: AwareDatetime | None = None  #: metric time < until
    limit: PageSize = DEFAULT_PAGE_SIZE
    cursor: str | None = None  #: `next_cursor` of the page before

    @model_validator(mode="after")
    def _ranges_in_order(self) -> Self:
        check_range(self.probability_min, self.probability_max, "probability")
        check_range(self.ath_min, self.ath_max, "ath")
        check_range(self.change_min, self.change_max, "change")
        check_range(self.since, self.until, "since/until")
        return self


class PredictionPage(Schema):
    """One page of predictions, newest first. A page examines a bounded number of stored predictions
    (SCAN_LIMIT, the model's own when a model is named): when the filters matched fewer rows than the
    page holds before that bound, the page is short (maybe empty), `searched_to_id` and
    `searched_to_time` say how far back it looked, and `next_cursor` searches further back."""

    items: list[Prediction]
    next_cursor: str | None  #: pass as `cursor` for the next page; None on the last page
    #: set when the search stopped at its bound before filling the page: the lowest id examined
    searched_to_id: int | None = None
    searched_to_time: datetime | None = None  #: the metric time of that prediction
