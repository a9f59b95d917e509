"""The alert outbox in PostgreSQL: queued in the scoring transaction, claimed and settled by delivery."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from coinfleet.constants import ALERT_CLAIM_LOCK_SPACE
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
    mint: str
    url: str
    key: str
    body: bytes
    attempts: int  #: including this attempt (once it started)
    attempt_id: int | None  #: its row in the attempt log, written when the attempt starts
    age_seconds: float
    secret: str = field(repr=False)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ClaimedAlert:
        """Build from a `claim_alerts` row."""
        return cls(
            id=row["id"],
            model_id=row["model_id"],
            mint=row["mint"],
            url=row["url"],
            key=row["idempotency_key"],
            body=row["body"].encode(),
            attempts=row["attempts"],
            attempt_id=row["attempt_id"],
            age_seconds=row["age_seconds"],
            secret=row["secret"],
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    """The database session a worker's claims name: while it lives, its claims hold."""

    worker: str  #: a name unique to the worker process
    pid: int
    backend_start: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """What one claim gave: the alerts in queue order, and how many cut-short attempts it closed."""

    alerts: list[ClaimedAlert]
    cut_short: int


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueHead:
    """A model's oldest pending alert."""

    url: str
    due_in: float  #: seconds until it may be claimed (≤ 0: now)


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """What one delivery attempt gave."""

    url: str  #: the last URL tried (after redirects)
    status_code: int | None
    latency_ms: float | None  #: None for an attempt cut short
    error: str | None
    excerpt: str | None  #: the start of the response body (≤ 500 characters)
    refused: bool = False  #: refused before any byte was sent (SSRF guard, a redirect not followed)

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


async def session(conn: asyncpg.Connection, worker: str) -> Session:
    """The identity of `conn`'s session, to be named by the claims of `worker`."""
    row = await conn.fetchrow(query("session_identity"))
    assert row is not None
    return Session(worker=worker, pid=row["pid"], backend_start=row["backend_start"])


async def head(conn: asyncpg.Connection, model_id: int, restart_grace: float) -> QueueHead | None:
    """The model's oldest pending alert; None when nothing is pending. A claim named by a session from
    before a server restart holds `restart_grace` seconds past the restart."""
    row = await conn.fetchrow(query("alert_queue_head"), model_id, restart_grace)
    return None if row is None else QueueHead(url=row["url"], due_in=row["due_in"])


async def claim(
    conn: asyncpg.Connection,
    model_id: int,
    owner: Session,
    lease_seconds: float,
    limit: int,
    restart_grace: float,
) -> Claim:
    """Up to `limit` alerts from the head of the model's queue, each with an attempt logged as started;
    none while `owner`'s session is not alive (its claims would be void at once)."""
    async with conn.transaction():
        await conn.execute(query("lock_model_claims"), ALERT_CLAIM_LOCK_SPACE, model_id)
        rows = await conn.fetch(
            query("claim_alerts"),
            model_id,
            owner.worker,
            lease_seconds,
            limit,
            owner.pid,
            owner.backend_start,
            restart_grace,
        )
    return Claim(
        alerts=[ClaimedAlert.from_row(r) for r in rows], cut_short=rows[0]["cut_short"] if rows else 0
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """How one attempt ended and what becomes of its alert."""

    alert: ClaimedAlert
    attempt: Attempt
    state: AlertState  #: delivered, pending (retry after `retry_in` s) or dead
    retry_in: float = 0.0


async def settle(
    conn: asyncpg.Connection, worker: str, outcome: Outcome, following: ClaimedAlert | None = None
) -> ClaimedAlert | None:
    """Store an attempt's outcome in the log and settle its alert; then start the attempt at the
    `following` claimed alert, returned with its log row (None when there is none or it was lost)."""
    attempt, alert = outcome.attempt, outcome.alert
    row = await conn.fetchrow(
        query("settle_alert"),
        worker,
        alert.id,
        alert.attempt_id,
        attempt.url,
        attempt.status_code,
        attempt.latency_ms,
        attempt.error,
        attempt.excerpt,
        outcome.state,
        outcome.retry_in,
        None if following is None else following.id,
    )
    if following is None or row is None:
        return None
    return dataclasses.replace(following, attempt_id=row["id"], attempts=row["attempt"])


async def start(conn: asyncpg.Connection, worker: str, alert: ClaimedAlert) -> ClaimedAlert | None:
    """Start the attempt at a claimed alert: returned with its log row (None when the claim was lost)."""
    row = await conn.fetchrow(query("start_alert_attempt"), worker, alert.id)
    return None if row is None else dataclasses.replace(alert, attempt_id=row["id"], attempts=row["attempt"])


async def wake_receiver(conn: asyncpg.Connection, url_prefix: str) -> None:
    """A receiver answers again: every pending alert to it waiting out a backoff may go now."""
    await conn.execute(query("wake_receiver_alerts"), url_prefix)


async def release(conn: asyncpg.Connection, alerts: Sequence[ClaimedAlert], worker: str) -> None:
    """Give back the worker's claims on these alerts, so nobody waits for their lease."""
    if alerts:
        await conn.execute(query("release_alert_claims"), [a.id for a in alerts], worker)


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
