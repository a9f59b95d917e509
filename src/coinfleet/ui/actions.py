"""What the UI changes: model status, settings, name; each goes through the registry's own rules."""

from __future__ import annotations

from typing import Any, Literal

from coinfleet.errors import CoinfleetError
from coinfleet.models import registry
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
