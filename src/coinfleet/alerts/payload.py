"""The webhook body (compatible with the predecessor's n8n payload), its signature and its headers."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from coinfleet import __version__
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord

SERVICE = "coinfleet"
SIGNATURE_HEADER = "X-Coinfleet-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: which attempt at the alert this request is (1, 2, …, counted over every worker): a re-send of an
#: alert is told apart even when it goes within the same second, with the same `t` and signature
ATTEMPT_HEADER = "X-Coinfleet-Attempt"


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSchema(_Schema):
    """The model block of one prediction (the predecessor's field names)."""

    id: int
    active_model_id: int
    name: str
    model_type: str
    target_variable: str | None
    target_operator: str | None
    target_value: float | None
    future_minutes: float
    price_change_percent: float | None
    target_direction: str | None
    features: list[str]
    phases: list[int] | None
    total_predictions: int
    last_prediction_at: datetime | None
    version: int


class PredictionSchema(_Schema):
    """One prediction; coinfleet adds the prediction id, tag, price and market cap at prediction."""

    prediction: int
    probability: float
    is_alert: bool
    alert_threshold: float
    model: ModelSchema
    prediction_id: int | None  #: None for a prediction suppressed by an ignore window or log limit
    tag: str
    suppressed: str | None
    metric_timestamp: datetime
    price_close: float
    market_cap_close: float
    phase_id: int | None


class MetadataSchema(_Schema):
    """Counts over the payload's predictions and who sent it."""

    total_predictions: int
    alerts_count: int
    service: str
    version: str


class AlertPayload(_Schema):
    """One POST: one coin event of one model (the predecessor's n8n payload plus an idempotency key)."""

    coin_id: str
    timestamp: datetime
    predictions: list[PredictionSchema]
    metadata: MetadataSchema
    idempotency_key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelTotals:
    """A model's counters at the time of the batch."""

    total_predictions: int
    last_prediction_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Scored:
    """One scored prediction as the payload needs it."""

    row: MetricRow
    probability: float
    tag: str
    suppressed: str | None
    prediction_id: int | None


def idempotency_key(model_id: int, mint: str, metric_ts: datetime) -> str:
    """A stable key per model and coin event: the same prediction always gets the same key."""
    digest = hashlib.sha256(f"{model_id}|{mint}|{metric_ts.isoformat()}".encode()).hexdigest()
    return f"cf-{model_id}-{digest[:32]}"


def model_schema(model: ModelRecord, totals: ModelTotals) -> ModelSchema:
    """The model block, from the registry record."""
    target = model.target
    return ModelSchema(
        id=model.id,
        active_model_id=model.id,
        name=model.name,
        model_type=model.algorithm,
        target_variable=target.variable,
        target_operator=target.operator,
        target_value=target.value,
        future_minutes=target.horizon_seconds / 60,
        price_change_percent=target.change_percent,
        target_direction=target.direction,
        features=list(model.features),
        phases=model.settings.phases,
        total_predictions=totals.total_predictions,
        last_prediction_at=totals.last_prediction_at,
        version=model.version,
    )


def build_payload(model: ModelSchema, alert_threshold: float, scored: Scored) -> AlertPayload:
    """The body for one scored prediction of one model."""
    row = scored.row
    prediction = PredictionSchema(
        prediction=1 if scored.probability >= 0.5 else 0,
        probability=scored.probability,
        is_alert=scored.tag == "alert",
        alert_threshold=alert_threshold,
        model=model,
        prediction_id=scored.prediction_id,
        tag=scored.tag,
        suppressed=scored.suppressed,
        metric_timestamp=row.timestamp,
        price_close=row.price_close,
        market_cap_close=row.market_cap_close,
        phase_id=row.phase_id_at_time,
    )
    metadata = MetadataSchema(
        total_predictions=1, alerts_count=int(prediction.is_alert), service=SERVICE, version=__version__
    )
    return AlertPayload(
        coin_id=row.mint,
        timestamp=row.timestamp,
        predictions=[prediction],
        metadata=metadata,
        idempotency_key=idempotency_key(model.id, row.mint, row.timestamp),
    )


def encode(payload: AlertPayload) -> str:
    """The JSON text that is stored and sent byte for byte on every attempt."""
    return payload.model_dump_json()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`.

    The time is inside the signed text, so a receiver can refuse an old request (a replay) and
    nobody can move the time without the secret."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def headers(body: bytes, key: str, secret: str, timestamp: int, *, attempt: int = 1) -> dict[str, str]:
    """The request headers of one attempt: content type, idempotency key, attempt number and the
    signature."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"{SERVICE}/{__version__}",
        IDEMPOTENCY_HEADER: key,
        ATTEMPT_HEADER: str(attempt),
        SIGNATURE_HEADER: sign(body, secret, timestamp),
    }
