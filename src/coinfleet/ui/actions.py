"""What the UI changes, each through the service layer's own function (the rules the CLI and API use)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from coinfleet.models.bundle import ModelBundle
from coinfleet.service import alerts as alert_writes
from coinfleet.service import model_admin, versions
from coinfleet.service import models as model_writes
from coinfleet.service.schemas import Model, WebhookTest
from coinfleet.ui import context

StatusAction = Literal["activate", "deactivate", "resume"]
_STATUS = {
    "activate": model_writes.activate_model,
    "deactivate": model_writes.deactivate_model,
    "resume": model_writes.resume_model,
}


async def change_status(name: str, action: StatusAction) -> None:
    """Activate, deactivate or resume a model."""
    await _STATUS[action](context.pool(), name)


async def update_settings(name: str, changes: dict[str, Any]) -> None:
    """Apply validated setting changes."""
    allow_private = context.current().settings.webhook_allow_private
    await model_writes.update_settings(context.pool(), name, changes, allow_private=allow_private)


async def rename(name: str, new_name: str) -> None:
    """Give a model another name."""
    await versions.rename_model(context.pool(), name, new_name)


async def delete(name: str, *, with_history: bool) -> None:
    """Delete a model (and its predictions, evaluations and alerts when asked)."""
    await model_admin.delete_model(context.pool(), name, with_history=with_history)


async def retry_alert(alert_id: int) -> int:
    """Queue one dead alert again, to its model's current URL; how many were queued (0 or 1)."""
    default_url = context.current().settings.default_webhook_url
    return await alert_writes.retry_alert(context.pool(), alert_id, default_url=default_url)


async def retry_dead(name: str) -> int:
    """Queue every dead alert of a model again; how many."""
    default_url = context.current().settings.default_webhook_url
    return await alert_writes.retry_dead_alerts(context.pool(), name, default_url=default_url)


async def models_with_dead_alerts() -> list[str]:
    """Names of the models that have dead alerts."""
    return [m.name for m in await model_writes.list_models(context.pool()) if m.lane.alerts_dead]


async def send_test(url: str, name: str | None) -> WebhookTest:
    """POST a signed sample alert to `url` (as the model would, when one is named)."""
    settings = context.current().settings
    return await alert_writes.send_test_alert(settings, url, db=context.pool(), model=name)


async def import_bundle(bundle: ModelBundle, *, name: str | None, activate: bool) -> Model:
    """Validate and register a model (under `name` when given)."""
    if name:
        bundle = replace(bundle, name=name)
    return await model_writes.import_model(context.pool(), bundle, activate=activate)
