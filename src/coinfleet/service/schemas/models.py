"""Models, their lanes and the fleet's health."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from coinfleet.service.schemas.common import Schema, Status


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
    #: events after the model's cursor: exact up to EXACT_LAG_EVENTS, estimated above, at most COUNT_CAP
    lag_events: int
    lag_events_capped: bool  #: lag_events is an estimate, or stopped at the cap (the true number is higher)
    lag_seconds: float  #: since the oldest event after the cursor was inserted (0 when caught up)
    stored_predictions: int  #: every prediction the lanes stored for this model
    last_prediction_at: datetime | None  #: metric time of the newest stored prediction
    cursor_moved_at: datetime | None  #: when the cursor last advanced
    alerts_pending: int  #: alerts waiting for delivery (stops at COUNT_CAP)
    alerts_dead: int  #: alerts delivery gave up on, waiting for a manual retry (stops at COUNT_CAP)
    #: the worker (host:pid:…) whose lease lets it score this model now; None: nobody holds it
    owner: str | None = None
    lease_epoch: int | None = None  #: how often the lease was taken (None: never)
    lease_expires_at: datetime | None = None  #: when the lease ends unless its owner renews it


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
    #: active model → the worker holding its lane's lease (None: nobody holds it, e.g. no worker runs)
    owners: dict[str, str | None] = Field(default_factory=dict)
