"""The alert outbox in PostgreSQL: queued in the scoring transaction, claimed and settled by delivery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from coinfleet.alerts.payload import (
    ModelTotals,
    Scored,
    build_payload,
    encode,
    idempotency_key,
    model_schema,
)
from coinfleet.alerts.rules import webhook_url
from coinfleet.db.sql import query
from coinfleet.errors import WebhookRefused
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord

AlertState = Literal["pending", "delivered", "dead"]
PredictionIds = Mapping[tuple[str, datetime], int]


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxItem:
    """A scored prediction the model's send rules picked, stored or suppressed."""

    url: str
    row: MetricRow
    probability: float
    tag: str
    suppressed: str | None  #: why no prediction row was stored (ignore window, log limit)


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimedAlert:
    """An alert this worker may attempt now."""

    id: int
    model_id: int
    url: str
    key: str
    body: bytes
    attempts: int  #: including this attempt
    age_seconds: float
    secret: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ClaimedAlert:
        """Build from a `claim_alert` row."""
        return cls(
            id=row["id"],
            model_id=row["model_id"],
            url=row["url"],
            key=row["idempotency_key"],
            body=row["body"].encode(),
            attempts=row["attempts"],
            age_seconds=row["age_seconds"],
            secret=row["secret"],
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertRow:
    """One outbox row for listings."""

    id: int
    model_id: int
    model_name: str
    prediction_id: int | None
    mint: str
    metric_ts: datetime
    tag: str
    suppressed: str | None
    url: str
    idempotency_key: str
    state: AlertState
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AlertRow:
        """Build from a `list_alerts` row."""
        return cls(**dict(row))


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """What one delivery attempt gave."""

    url: str  #: the last URL tried (after redirects)
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None  #: the start of the response body (≤ 500 characters)
    refused: bool = False  #: the SSRF guard refused the URL (no request was sent)

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


async def write_outbox(
    conn: asyncpg.Connection, model: ModelRecord, items: Sequence[OutboxItem], ids: PredictionIds
) -> None:
    """Queue a batch's alerts; call inside the transaction that stores the batch's predictions."""
    if not items:
        return
    totals = await _totals(conn, model.id)
    schema = model_schema(model, totals)
    threshold = model.settings.alert_threshold
    bodies = [
        encode(build_payload(schema, threshold, _scored(item, ids.get((item.row.mint, item.row.timestamp)))))
        for item in items
    ]
    await conn.execute(
        query("insert_alerts"),
        model.id,
        [ids.get((i.row.mint, i.row.timestamp)) for i in items],
        [i.row.mint for i in items],
        [i.row.timestamp for i in items],
        [i.tag for i in items],
        [i.suppressed for i in items],
        [i.url for i in items],
        [idempotency_key(model.id, i.row.mint, i.row.timestamp) for i in items],
        bodies,
    )


def _scored(item: OutboxItem, prediction_id: int | None) -> Scored:
    return Scored(
        row=item.row,
        probability=item.probability,
        tag=item.tag,
        suppressed=item.suppressed,
        prediction_id=prediction_id,
    )


async def _totals(conn: asyncpg.Connection, model_id: int) -> ModelTotals:
    row = await conn.fetchrow(query("model_prediction_totals"), model_id)
    assert row is not None
    return ModelTotals(total_predictions=row["total"], last_prediction_at=row["last_prediction_at"])


async def models_with_pending(conn: asyncpg.Connection) -> list[int]:
    """Ids of models that have alerts waiting."""
    return [r["model_id"] for r in await conn.fetch(query("models_with_pending_alerts"))]


async def claim(
    conn: asyncpg.Connection, model_id: int, worker: str, lease_seconds: float
) -> ClaimedAlert | None:
    """The model's oldest pending alert if it is due and nobody holds it; None otherwise."""
    row = await conn.fetchrow(query("claim_alert"), model_id, worker, lease_seconds)
    return None if row is None else ClaimedAlert.from_row(row)


async def seconds_until_due(conn: asyncpg.Connection, model_id: int) -> float | None:
    """Seconds until the model's oldest pending alert may be claimed; None when nothing is pending."""
    value: float | None = await conn.fetchval(query("seconds_until_head_due"), model_id)
    return value


async def settle(
    conn: asyncpg.Connection,
    alert: ClaimedAlert,
    worker: str,
    attempt: Attempt,
    *,
    dead: bool,
    retry_in: float,
) -> None:
    """Log the attempt and mark the alert delivered, pending again (after `retry_in` s) or dead."""
    async with conn.transaction():
        await conn.execute(
            query("insert_alert_attempt"),
            alert.id,
            alert.model_id,
            alert.attempts,
            attempt.url,
            attempt.status_code,
            attempt.latency_ms,
            attempt.error,
            attempt.excerpt,
        )
        if attempt.ok:
            await conn.execute(query("mark_alert_delivered"), alert.id, worker, attempt.status_code)
        else:
            await conn.execute(
                query("mark_alert_failed"),
                alert.id,
                worker,
                attempt.status_code,
                dead,
                retry_in,
                attempt.error,
            )


async def release(conn: asyncpg.Connection, alert: ClaimedAlert, worker: str) -> None:
    """Give back a claim whose attempt was interrupted, so another worker need not wait for the lease."""
    await conn.execute(query("release_alert_claim"), alert.id, worker)


async def list_alerts(
    conn: asyncpg.Connection, *, model_id: int | None = None, state: AlertState | None = None, limit: int = 50
) -> list[AlertRow]:
    """The newest alerts first, optionally of one model and in one state."""
    rows = await conn.fetch(query("list_alerts"), model_id, state, limit)
    return [AlertRow.from_row(r) for r in rows]


async def retry_alert(
    conn: asyncpg.Connection, model: ModelRecord, alert_id: int, default_url: str | None
) -> int:
    """Put one dead alert of `model` back in the queue, to the model's current URL; return 1 or 0."""
    url = _current_url(model, default_url)
    async with conn.transaction():
        ids = await conn.fetch(query("retry_alert"), alert_id, url)
        await conn.execute(query("notify_alerts"))
    return len(ids)


async def retry_dead(conn: asyncpg.Connection, model: ModelRecord, default_url: str | None) -> int:
    """Put every dead alert of `model` back in the queue, to its current URL; return how many."""
    url = _current_url(model, default_url)
    async with conn.transaction():
        ids = await conn.fetch(query("retry_dead_alerts_of_model"), model.id, url)
        await conn.execute(query("notify_alerts"))
    return len(ids)


def _current_url(model: ModelRecord, default_url: str | None) -> str:
    url = webhook_url(model.settings, default_url)
    if url is None:
        raise WebhookRefused(
            f"model {model.name!r} has no enabled webhook; set one with "
            f"`coinfleet models set {model.name} webhook_url=URL webhook_enabled=true`"
        )
    return url


async def alert_model_id(conn: asyncpg.Connection, alert_id: int) -> int | None:
    """The model an alert belongs to; None when there is no such alert."""
    value: int | None = await conn.fetchval(query("get_alert_model"), alert_id)
    return value


async def prune(conn: asyncpg.Connection, retention_seconds: float) -> int:
    """Delete attempt log rows and delivered alerts older than the retention; return rows deleted."""
    attempts: str = await conn.execute(query("prune_alert_attempts"), retention_seconds)
    delivered: str = await conn.execute(query("prune_delivered_alerts"), retention_seconds)
    return int(attempts.split()[-1]) + int(delivered.split()[-1])
