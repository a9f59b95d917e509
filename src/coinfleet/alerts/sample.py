"""A test alert: a made-up but well-formed payload, signed and sent once to a URL the user names."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from coinfleet.alerts import secrets
from coinfleet.alerts.outbox import Attempt
from coinfleet.alerts.payload import (
    ModelSchema,
    ModelTotals,
    Scored,
    build_payload,
    encode,
    headers,
    model_schema,
)
from coinfleet.alerts.ssrf import check_url
from coinfleet.alerts.transport import new_client, post_webhook
from coinfleet.config import Settings
from coinfleet.constants import DEFAULT_ALERT_THRESHOLD
from coinfleet.errors import WebhookRefused
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord

SAMPLE_MINT = "CoinfleetTestWebhook1111111111111111111111pump"


def sample_row() -> MetricRow:
    """A made-up metric row for a test payload."""
    return MetricRow(
        mint=SAMPLE_MINT,
        timestamp=datetime.now(UTC).replace(microsecond=0),
        phase_id_at_time=1,
        price_open=2.8e-08,
        price_high=3.1e-08,
        price_low=2.7e-08,
        price_close=3.0e-08,
        market_cap_close=30.0,
        volume_sol=1.5,
        buy_volume_sol=1.0,
        sell_volume_sol=0.5,
        num_buys=12,
        num_sells=4,
        unique_wallets=9,
    )


def sample_model_schema() -> ModelSchema:
    """A made-up model block for a test payload without a model."""
    return ModelSchema(
        id=0,
        active_model_id=0,
        name="webhook-test",
        model_type="test",
        target_variable=None,
        target_operator=None,
        target_value=None,
        future_minutes=5,
        price_change_percent=10,
        target_direction="up",
        features=[],
        phases=None,
        total_predictions=0,
        last_prediction_at=None,
        version=1,
    )


async def send_test(
    settings: Settings, url: str, model: ModelRecord | None = None, secret: str | None = None
) -> Attempt:
    """POST one sample alert to `url`, signed with `secret` (a throwaway one when None), the SSRF guard
    applying; WebhookRefused if refused."""
    await check_url(url, allow_private=settings.webhook_allow_private)
    schema = model_schema(model, ModelTotals(total_predictions=0, last_prediction_at=None)) if model else None
    threshold = model.settings.alert_threshold if model else DEFAULT_ALERT_THRESHOLD
    scored = Scored(row=sample_row(), probability=0.93, tag="alert", suppressed=None, prediction_id=None)
    payload = build_payload(schema or sample_model_schema(), threshold, scored)
    payload = payload.model_copy(update={"idempotency_key": f"cf-test-{uuid.uuid4().hex}"})
    body = encode(payload).encode()
    signing = secret or secrets.generate()
    async with new_client(settings.webhook_timeout_seconds, 1) as client:
        attempt = await post_webhook(
            client,
            url,
            body,
            headers(body, payload.idempotency_key, signing, int(time.time())),
            allow_private=settings.webhook_allow_private,
        )
    if attempt.refused:
        raise WebhookRefused(attempt.error or f"webhook URL {url!r} refused")
    return attempt
