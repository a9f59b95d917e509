"""What the UI changes: model status, settings, name; each goes through the registry's own rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from coinfleet.alerts import delivery, outbox
from coinfleet.alerts.outbox import Attempt
from coinfleet.errors import AlertNotFound, CoinfleetError
from coinfleet.models import importing, registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.settings import apply_changes
from coinfleet.ui import context

StatusAction = Literal["activate", "deactivate", "resume"]
_STATUS: dict[StatusAction, registry.Status] = {
    "activate": "active",
    "deactivate": "inactive",
    "resume": "active",
}


async def change_status(name: str, action: StatusAction) -> None:
    """Activate, deactivate or resume a model."""
    async with context.pool().acquire() as conn:
        await registry.set_status(conn, name, _STATUS[action])


async def update_settings(name: str, changes: dict[str, Any]) -> None:
    """Apply validated setting changes (the stored secret stays unless changed)."""
    async with context.pool().acquire() as conn:
        model = await registry.get(conn, name)
        await registry.update_settings(conn, name, apply_changes(model.settings, changes))


async def rename(name: str, new_name: str) -> None:
    """Give a model another name."""
    raise CoinfleetError(f"renaming {name!r} to {new_name!r} is not available yet")


async def delete(name: str, *, with_history: bool) -> None:
    """Delete a model (and its history when asked)."""
    raise CoinfleetError(f"deleting {name!r} is not available yet")


async def retry_alert(alert_id: int) -> int:
    """Queue one dead alert again, to its model's current URL; how many were queued (0 or 1)."""
    settings = context.current().settings
    async with context.pool().acquire() as conn:
        model_id = await outbox.alert_model_id(conn, alert_id)
        if model_id is None:
            raise AlertNotFound(f"no alert with id {alert_id}")
        model = await registry.get_by_id(conn, model_id)
        return await outbox.retry_alert(conn, model, alert_id, settings.default_webhook_url)


async def retry_dead(name: str) -> int:
    """Queue every dead alert of a model again; how many."""
    settings = context.current().settings
    async with context.pool().acquire() as conn:
        model = await registry.get(conn, name)
        return await outbox.retry_dead(conn, model, settings.default_webhook_url)


async def send_test(url: str, name: str | None) -> Attempt:
    """POST a signed sample alert to `url` (as the model would, when one is named)."""
    settings = context.current().settings
    model = None
    if name:
        async with context.pool().acquire() as conn:
            model = await registry.get(conn, name)
    return await delivery.send_test(settings, url, model)


async def import_bundle(bundle: ModelBundle, *, name: str | None, activate: bool) -> str:
    """Validate and register a model (under `name` when given); its name."""
    if name:
        bundle = replace(bundle, name=name)
    async with context.pool().acquire() as conn:
        model = await importing.import_bundle(conn, bundle, activate=activate)
    return model.name
