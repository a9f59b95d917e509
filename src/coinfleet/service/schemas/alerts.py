"""The webhook outbox: alerts, their delivery attempts, test sends."""

from __future__ import annotations

from datetime import datetime

from coinfleet.service.schemas.common import DEFAULT_PAGE_SIZE, AlertState, PageSize, Schema, Tag


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
