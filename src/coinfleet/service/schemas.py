"""The typed records the service layer takes and returns: what the CLI, API, UI and MCP server exchange.

Records are frozen pydantic models ("schemas": "model" means an ML model here). Queries validate their
own values, so a bad filter fails before any SQL runs, with a message that says what to send instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from coinfleet.metrics import MetricRow

Status = Literal["active", "inactive", "quarantined", "deleted"]
Tag = Literal["negative", "positive", "alert"]
EvaluationState = Literal["waiting", "evaluated"]
Result = Literal["success", "failed", "not_applicable"]
Rule = Literal["horizon", "within"]
AlertState = Literal["pending", "delivered", "dead"]

#: rows in one page when a query does not say
DEFAULT_PAGE_SIZE = 50
#: most rows one page may hold
MAX_PAGE_SIZE = 500
#: lag, alert and event counts stop at this many (a bounded count stays cheap on a huge backlog)
COUNT_CAP = 100_000
#: most coin_metrics rows, predictions and alerts in one coin detail
MAX_COIN_ROWS = 5_000


class Schema(BaseModel):
    """Base of every service record: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]


def _check_range(low: float | datetime | None, high: float | datetime | None, what: str) -> None:
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise ValueError(f"{what}: the lower bound {low} is above the upper bound {high}")


# --- models and lanes -------------------------------------------------------------------------------


class Target(Schema):
    """What a model predicts (see coinfleet.targets.TargetSpec), with a short description."""

    kind: Literal["change", "classic"]
    horizon_seconds: int
    direction: Literal["up", "down"] | None = None
    change_percent: float | None = None
    variable: str | None = None
    operator: str | None = None
    value: float | None = None
    description: str  #: e.g. "up 10% in 120s"


class Lane(Schema):
    """Where a model's lane stands, as stored: its cursor's progress, lag and alert queue."""

    model_id: int
    name: str
    status: Status
    status_reason: str | None  #: why it is quarantined or inactive (None when active)
    lag_events: int  #: events after the model's cursor (stops at COUNT_CAP)
    lag_events_capped: bool  #: lag_events stopped at the cap; the true number is higher
    lag_seconds: float  #: since the oldest event after the cursor was inserted (0 when caught up)
    stored_predictions: int  #: every prediction the lanes stored for this model
    last_prediction_at: datetime | None  #: metric time of the newest stored prediction
    cursor_moved_at: datetime | None  #: when the cursor last advanced
    alerts_pending: int  #: alerts waiting for delivery (stops at COUNT_CAP)
    alerts_dead: int  #: alerts delivery gave up on, waiting for a manual retry (stops at COUNT_CAP)


class Model(Schema):
    """A registered model with its lane."""

    id: int
    name: str
    version: int
    algorithm: str
    format: str
    status: Status
    status_reason: str | None
    #: why the stored settings no longer validate (the model is then quarantined; `settings` shows
    #: defaults); None when they are fine
    settings_error: str | None = None
    target: Target
    features: list[str]
    settings: dict[str, Any]  #: every setting; the webhook secret shows as "***"
    #: events set aside for this model by reason (model_failed: the model fails on that row alone;
    #: bad_time: dated ahead of the wall clock or at ±infinity)
    set_aside: dict[str, int] = Field(default_factory=dict)
    training_metrics: dict[str, Any]
    sha256: str  #: of the model file as stored (a trusted pickle is stored converted)
    #: where the file came from (name, format, sha256 as given, trusted) and how it serves (ONNX or why not)
    source: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    lane: Lane


class LagReport(Schema):
    """Every lane's lag, and the age of the transaction that holds the event horizon back."""

    horizon_age_seconds: float  #: lanes only read events of finished transactions; a long one stalls all
    lanes: list[Lane]


class Health(Schema):
    """Whether the service can do its job, and the numbers behind the answer."""

    status: Literal["ok", "degraded", "down"]
    problems: list[str]  #: one sentence per problem; empty when ok
    checked_at: datetime
    database: bool  #: the database answered
    horizon_age_seconds: float | None
    events_stored: int | None  #: events not yet pruned (stops at COUNT_CAP)
    models: dict[str, int]  #: models by status
    quarantined: dict[str, str]  #: name → reason
    alerts_pending: int | None
    alerts_dead: int | None
    #: this process's loops (lanes, supervisor, evaluation, delivery, LISTEN) waiting out a database
    #: outage: loop → the error that began it
    waiting_for_database: dict[str, str] = Field(default_factory=dict)


# --- predictions ------------------------------------------------------------------------------------


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
        _check_range(self.probability_min, self.probability_max, "probability")
        _check_range(self.ath_min, self.ath_max, "ath")
        _check_range(self.change_min, self.change_max, "change")
        _check_range(self.since, self.until, "since/until")
        return self


class PredictionPage(Schema):
    """One page of predictions, newest first."""

    items: list[Prediction]
    next_cursor: str | None  #: pass as `cursor` for the next page; None on the last page


# --- coins ------------------------------------------------------------------------------------------


class CoinModel(Schema):
    """What one model did with one coin in the window."""

    model_id: int
    model_name: str
    predictions: list[Prediction]  #: oldest first; each spans its evaluation window
    alerts: list[Alert]  #: oldest first


class CoinDetail(Schema):
    """A coin's metric rows over a window, and every model's predictions, outcomes and alerts for it."""

    mint: str
    since: datetime | None  #: window start (None: unbounded)
    until: datetime | None  #: window end, exclusive (None: unbounded)
    rows: list[MetricRow]  #: oldest first; the newest MAX_COIN_ROWS when the window holds more
    rows_truncated: bool
    models: list[CoinModel]


# --- statistics -------------------------------------------------------------------------------------


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
    alert_gain_median_pct: float | None


class StatisticsReport(Schema):
    """Per-model statistics and the same across models."""

    since: datetime | None  #: None: all time
    models: list[Statistics]
    overall: Statistics


class BacktestReport(Schema):
    """What a backtest gave: statistics per model and every prediction with its outcome."""

    rows: int  #: metric rows replayed
    models: list[Statistics]
    outcomes: list[dict[str, Any]]  #: one per prediction, times in seconds after the first row
    coverage: list[Coverage] = []  #: of the predictions whose horizon ended inside the rows
    rules: list[RuleComparison] = []  #: as of the horizon end beside the former rule


# --- alerts -----------------------------------------------------------------------------------------


class Alert(Schema):
    """One webhook alert in the outbox."""

    id: int
    model_id: int
    model_name: str
    prediction_id: int | None  #: None for a prediction an ignore window or log limit suppressed
    mint: str
    metric_ts: datetime
    tag: Tag
    suppressed: str | None  #: why no prediction row was stored
    url: str
    idempotency_key: str
    state: AlertState
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None


class AlertQuery(Schema):
    """Which alerts to list."""

    model: str | None = None
    state: AlertState | None = None
    limit: PageSize = DEFAULT_PAGE_SIZE
    cursor: str | None = None


class AlertPage(Schema):
    """One page of alerts, newest first."""

    items: list[Alert]
    next_cursor: str | None


class AlertAttempt(Schema):
    """One logged delivery attempt."""

    attempt: int
    url: str
    status_code: int | None
    latency_ms: float | None  #: None while in flight, or for an attempt cut short
    error: str | None
    response_excerpt: str | None
    attempted_at: datetime
    finished_at: datetime | None  #: None while the attempt is in flight


class AlertDetail(Schema):
    """An alert and its attempts, oldest first."""

    alert: Alert
    attempts: list[AlertAttempt]


class WebhookTest(Schema):
    """What a test send to a webhook URL gave."""

    url: str  #: the last URL tried (after redirects)
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None  #: the start of the response body (at most 500 characters)
    refused: bool  #: the SSRF guard refused the URL; nothing was sent
    ok: bool  #: a 2xx answer


CoinModel.model_rebuild()


# --- outcome quality: coverage, the former rule, calibration, drift ----------------------------------


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


class ReliabilityBucket(Schema):
    """One bucket of a reliability table: predicted probability range → observed hit rate."""

    lower: float
    upper: float
    count: int
    mean_probability: float
    hit_rate: float


class CalibrationReport(Schema):
    """A model's Brier score and reliability table over its judged predictions in a window."""

    model_id: int
    name: str
    count: int  #: judged predictions
    brier: float | None  #: mean (p − label)²; 0 is perfect, always 0.5 scores 0.25
    base_rate: float | None  #: share of labels that are 1
    table: list[ReliabilityBucket]  #: non-empty buckets, lowest first


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
