"""Alerts: the webhook outbox by model and state, the attempts of one alert, retries and test sends."""

from __future__ import annotations

from coinfleet.alerts import outbox, secrets
from coinfleet.alerts.sample import send_test
from coinfleet.config import Settings
from coinfleet.db.sql import query
from coinfleet.errors import AlertNotFound, InvalidRequest
from coinfleet.models import registry
from coinfleet.service.common import Db, as_dict, connection, decode_cursor, model_id_of, split_page
from coinfleet.service.schemas import Alert, AlertAttempt, AlertDetail, AlertPage, AlertQuery, WebhookTest

#: most attempts shown for one alert (delivery gives up long before)
MAX_ATTEMPTS_SHOWN = 1000


async def list_alerts(db: Db, wanted: AlertQuery) -> AlertPage:
    """One page of alerts, newest first; ModelNotFound for an unknown model, InvalidRequest for a bad
    cursor."""
    rows = await db.fetch(
        query("list_alerts_page"),
        decode_cursor(wanted.cursor),
        await model_id_of(db, wanted.model),
        wanted.state,
        wanted.limit + 1,
    )
    items, cursor = split_page([Alert.model_validate(as_dict(r)) for r in rows], wanted.limit, lambda a: a.id)
    return AlertPage(items=items, next_cursor=cursor)


async def get_alert(db: Db, alert_id: int) -> Alert:
    """The alert with this id; AlertNotFound otherwise."""
    row = await db.fetchrow(query("get_alert"), alert_id)
    if row is None:
        raise AlertNotFound(f"no alert with id {alert_id}; `coinfleet alerts list` shows the ids")
    return Alert.model_validate(as_dict(row))


async def alert_detail(db: Db, alert_id: int) -> AlertDetail:
    """An alert and its logged attempts, oldest first; AlertNotFound when there is no such alert."""
    alert = await get_alert(db, alert_id)
    rows = await db.fetch(query("alert_attempts_page"), alert_id, MAX_ATTEMPTS_SHOWN)
    return AlertDetail(alert=alert, attempts=[AlertAttempt.model_validate(as_dict(r)) for r in rows])


async def retry_alert(db: Db, alert_id: int, *, default_url: str | None) -> int:
    """Put one dead alert back in the queue, to its model's current webhook URL; 1 when queued, 0 when
    the alert is not dead. AlertNotFound when there is none, WebhookRefused when the model has no
    enabled webhook."""
    alert = await get_alert(db, alert_id)
    async with connection(db) as conn:
        model = await registry.get_by_id(conn, alert.model_id)
        return await outbox.retry_alert(conn, model, alert_id, default_url)


async def retry_dead_alerts(db: Db, model: str, *, default_url: str | None) -> int:
    """Put every dead alert of the model back in the queue, to its current webhook URL; how many."""
    async with connection(db) as conn:
        record = await registry.get(conn, model)
        return await outbox.retry_dead(conn, record, default_url)


async def send_test_alert(
    settings: Settings, url: str, *, db: Db | None = None, model: str | None = None
) -> WebhookTest:
    """POST one signed sample alert to `url` (not queued, no retry), with the named model's details and
    secret when `model` is given (that needs `db`), else signed with a throwaway secret; WebhookRefused
    when the SSRF guard refuses the URL."""
    record, secret = None, None
    if model is not None:
        if db is None:
            raise InvalidRequest("testing a webhook with a model's details needs the database")
        async with connection(db) as conn:
            record = await registry.get(conn, model)
            secret = await secrets.get(conn, record.id)
    attempt = await send_test(settings, url, record, secret)
    assert attempt.latency_ms is not None, "only an attempt cut short has no latency"
    return WebhookTest(
        url=attempt.url,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
        excerpt=attempt.excerpt,
        refused=attempt.refused,
        ok=attempt.ok,
    )


async def webhook_secret(db: Db, model: str) -> str:
    """The model's webhook signing secret (to configure a receiver); ModelNotFound for an unknown model."""
    async with connection(db) as conn:
        record = await registry.get(conn, model)
        return await secrets.get(conn, record.id)


async def replace_webhook_secret(db: Db, model: str, secret: str) -> None:
    """Give the model a new webhook signing secret; SettingError when it is too short."""
    async with connection(db) as conn:
        record = await registry.get(conn, model)
        await secrets.replace(conn, record.id, secret)


async def rotate_webhook_secret(db: Db, model: str, secret: str | None = None) -> str:
    """Replace the model's webhook signing secret with `secret`, or with a new random one when None; the
    secret now in use (the next delivery attempt is signed with it). SettingError when it is too short."""
    new = secrets.generate() if secret is None else secrets.checked(secret)
    await replace_webhook_secret(db, model, new)
    return new
