"""Alerts: the webhook outbox by model and state, and the attempts of one alert."""

from __future__ import annotations

from coinfleet.db.sql import query
from coinfleet.errors import AlertNotFound
from coinfleet.service.common import Db, as_dict, decode_cursor, model_id_of, split_page
from coinfleet.service.schemas import Alert, AlertAttempt, AlertDetail, AlertPage, AlertQuery

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
