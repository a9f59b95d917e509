"""Models and their lanes: list, show, lag; import, activate, deactivate, resume, change settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coinfleet.alerts.ssrf import check_setting
from coinfleet.db.sql import query
from coinfleet.errors import Conflict, ModelNotFound, SettingError, WebhookRefused
from coinfleet.lanes.store import set_aside_counts
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord, Status
from coinfleet.service.common import Db, as_dict, connection
from coinfleet.service.schemas import COUNT_CAP, EXACT_LAG_EVENTS, LagReport, Lane, Model, Target


def _lane(row: object) -> Lane:
    data = as_dict(row)
    data.pop("oldest_unread_inserted_at")
    data["model_id"] = data.pop("id")
    data["lag_seconds"] = max(data["lag_seconds"] or 0.0, 0.0)
    data["lag_events_capped"] = data.pop("lag_events_estimated") or data["lag_events"] >= COUNT_CAP
    return Lane.model_validate(data)


async def lanes(db: Db, model_id: int | None = None) -> list[Lane]:
    """Every lane (or the one of `model_id`), oldest model first."""
    rows = await db.fetch(query("model_lanes"), model_id, COUNT_CAP, EXACT_LAG_EVENTS)
    return [_lane(row) for row in rows]


def model_view(record: ModelRecord, lane: Lane, set_aside: dict[str, int] | None = None) -> Model:
    """The service record of a registered model."""
    return Model(
        id=record.id,
        name=record.name,
        version=record.version,
        algorithm=record.algorithm,
        format=record.format,
        status=record.status,
        status_reason=record.status_reason,
        settings_error=record.settings_error,
        set_aside=set_aside or {},
        target=Target(**record.target.to_dict(), description=record.target.describe()),
        features=list(record.features),
        settings=record.settings.public(),
        training_metrics=record.training_metrics,
        sha256=record.artifact_sha256,
        source=record.source,
        created_at=record.created_at,
        updated_at=record.updated_at,
        lane=lane,
    )


async def list_models(db: Db) -> list[Model]:
    """Every model that is not deleted, oldest first, with its lane."""
    records = await registry.list_models(db)
    by_id = {lane.model_id: lane for lane in await lanes(db)}
    set_aside: dict[int, dict[str, int]] = {}
    for row in await db.fetch(query("set_aside_by_model")):
        set_aside.setdefault(row["model_id"], {})[row["reason"]] = row["n"]
    return [model_view(r, by_id[r.id], set_aside.get(r.id)) for r in records if r.id in by_id]


async def show_model(db: Db, name: str) -> Model:
    """The model called `name` with its lane; ModelNotFound otherwise."""
    record = await registry.get(db, name)
    found = await lanes(db, record.id)
    if not found:
        raise ModelNotFound(f"model {name!r} was deleted just now")
    async with connection(db) as conn:
        set_aside = await set_aside_counts(conn, record.id)
    return model_view(record, found[0], set_aside)


async def lag(db: Db) -> LagReport:
    """Every lane's lag and the age of the oldest transaction holding the event horizon back."""
    age = float(await db.fetchval(query("horizon_age_seconds")))
    return LagReport(horizon_age_seconds=age, lanes=await lanes(db))


async def import_model(db: Db, bundle: ModelBundle, *, activate: bool = False) -> Model:
    """Validate and register a model (and activate it); a failed import changes nothing.

    ModelLoadError when the file does not load or validate, ModelExists when the name is taken,
    SettingError when the name is not allowed."""
    async with connection(db) as conn:
        record = await import_bundle(conn, bundle, activate=activate)
    return await show_model(db, record.name)


async def _set_status(db: Db, name: str, status: Status, reason: str | None) -> Model:
    async with connection(db) as conn:
        await registry.set_status(conn, name, status, reason)
    return await show_model(db, name)


async def activate_model(db: Db, name: str) -> Model:
    """Start scoring new events with the model (running servers pick it up live); its old backlog is
    skipped when it was inactive."""
    return await _set_status(db, name, "active", None)


async def deactivate_model(db: Db, name: str) -> Model:
    """Stop scoring with the model; its predictions stay."""
    return await _set_status(db, name, "inactive", "deactivated by operator")


async def _check_webhook(changes: Mapping[str, Any], *, allow_private: bool) -> None:
    url = changes.get("webhook_url")
    if not isinstance(url, str):  # None clears it; another type fails the settings' own validation
        return
    try:
        await check_setting(url, allow_private=allow_private)
    except WebhookRefused as exc:
        raise SettingError(f"webhook_url: {exc}") from None


async def resume_model(db: Db, name: str) -> Model:
    """Bring a quarantined model back at its cursor (nothing was lost); Conflict when it is not
    quarantined."""
    model = await registry.get(db, name)
    if model.status != "quarantined":
        raise Conflict(f"{name} is {model.status}, not quarantined; nothing to resume")
    return await _set_status(db, name, "active", None)


async def update_settings(db: Db, name: str, changes: Mapping[str, Any], *, allow_private: bool) -> Model:
    """Apply setting changes (running lanes pick them up without restart), atomically under concurrent
    writers; also repairs stored settings that no longer validate. SettingError names an unknown key,
    a bad value, a value that would silently stop the model or a `webhook_url` the sender would refuse
    (the SSRF guard, with `allow_private` from COINFLEET_WEBHOOK_ALLOW_PRIVATE), and nothing changes then."""
    await _check_webhook(changes, allow_private=allow_private)
    async with connection(db) as conn:
        await registry.change_settings(conn, name, dict(changes))
    return await show_model(db, name)
