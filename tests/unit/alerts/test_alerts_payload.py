"""The webhook body keeps the predecessor's n8n shape; signature and idempotency key are stable."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from coinfleet.alerts.payload import (
    ATTEMPT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    AlertPayload,
    Scored,
    build_payload,
    encode,
    headers,
    idempotency_key,
    sign,
)
from coinfleet.alerts.sample import sample_model_schema, sample_row

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PREDECESSOR_MODEL_KEYS = {
    "id",
    "active_model_id",
    "name",
    "model_type",
    "target_variable",
    "target_operator",
    "target_value",
    "future_minutes",
    "price_change_percent",
    "target_direction",
    "features",
    "phases",
    "total_predictions",
    "last_prediction_at",
}


def payload(tag: str = "alert", prediction_id: int | None = 42, probability: float = 0.91) -> AlertPayload:
    scored = Scored(
        row=sample_row(), probability=probability, tag=tag, suppressed=None, prediction_id=prediction_id
    )
    return build_payload(sample_model_schema(), 0.7, scored)


def test_body_has_every_field_of_the_predecessor_payload() -> None:
    body = json.loads(encode(payload()))
    assert {"coin_id", "timestamp", "predictions", "metadata"} <= body.keys()
    (prediction,) = body["predictions"]
    assert {"prediction", "probability", "is_alert", "alert_threshold", "model"} <= prediction.keys()
    assert prediction["model"].keys() >= PREDECESSOR_MODEL_KEYS
    assert {"total_predictions", "alerts_count", "service", "version"} <= body["metadata"].keys()


def test_body_adds_prediction_id_price_market_cap_and_key() -> None:
    row = sample_row()
    body = json.loads(encode(payload()))
    (prediction,) = body["predictions"]
    assert prediction["prediction_id"] == 42
    assert prediction["price_close"] == row.price_close
    assert prediction["market_cap_close"] == row.market_cap_close
    assert body["idempotency_key"] == idempotency_key(0, row.mint, row.timestamp)
    assert body["coin_id"] == row.mint


def test_alert_flags_and_counts() -> None:
    alert = json.loads(encode(payload("alert", probability=0.91)))
    negative = json.loads(encode(payload("negative", probability=0.2)))
    assert alert["predictions"][0]["is_alert"] is True and alert["metadata"]["alerts_count"] == 1
    assert alert["predictions"][0]["prediction"] == 1
    assert negative["predictions"][0]["is_alert"] is False and negative["metadata"]["alerts_count"] == 0
    assert negative["predictions"][0]["prediction"] == 0
    assert alert["metadata"]["total_predictions"] == 1


def test_suppressed_prediction_has_no_id() -> None:
    body = json.loads(encode(payload(prediction_id=None)))
    assert body["predictions"][0]["prediction_id"] is None


def test_signature_is_hmac_sha256_of_the_time_and_the_exact_body() -> None:
    body = encode(payload()).encode()
    expected = hmac.new(b"s3cret", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert sign(body, "s3cret", 1767225600) == f"t=1767225600,v1={expected}"
    assert sign(body + b" ", "s3cret", 1767225600) != sign(body, "s3cret", 1767225600)
    assert sign(body, "other", 1767225600) != sign(body, "s3cret", 1767225600)
    assert sign(body, "s3cret", 1767225601).split(",")[1] != sign(body, "s3cret", 1767225600).split(",")[1]


def test_headers_always_carry_key_and_signature() -> None:
    body = b"{}"
    signed = headers(body, "k1", "s3cret", 1767225600)
    assert signed[IDEMPOTENCY_HEADER] == "k1" and signed[ATTEMPT_HEADER] == "1"
    assert headers(body, "k1", "s3cret", 1767225600, attempt=3)[ATTEMPT_HEADER] == "3"
    assert signed[SIGNATURE_HEADER] == sign(body, "s3cret", 1767225600)
    assert "s3cret" not in repr(signed)
    assert signed["Content-Type"] == "application/json"


def test_idempotency_key_is_stable_and_distinct() -> None:
    key = idempotency_key(1, "mintA", T0)
    assert key == idempotency_key(1, "mintA", T0)
    assert len({key, idempotency_key(2, "mintA", T0), idempotency_key(1, "mintB", T0)}) == 3
    assert key != idempotency_key(1, "mintA", T0 + timedelta(seconds=1))
