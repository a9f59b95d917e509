"""The reads and writes the pages make, all through coinfleet's read side and registry."""

from __future__ import annotations

import time
from dataclasses import dataclass

from coinfleet.events.cursor import events_behind, load_cursor, oldest_unread_ts
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord
from coinfleet.reports import ModelStats, model_stats
from coinfleet.ui import context


@dataclass(frozen=True, kw_only=True)
class FleetRow:
    """What the overview shows of one model."""

    model: ModelRecord
    stats: ModelStats | None
    lag_events: int
    lag_seconds: float | None
    stored_predictions: int


async def fleet() -> list[FleetRow]:
    """Every model with its statistics and lag."""
    async with context.pool().acquire() as conn:
        models = await registry.list_models(conn)
        stats = {s.model_id: s for s in await model_stats(conn)}
        rows = []
        for model in models:
            cursor = await load_cursor(conn, model.id)
            behind = await events_behind(conn, cursor)
            oldest = await oldest_unread_ts(conn, cursor) if behind else None
            rows.append(
                FleetRow(
                    model=model,
                    stats=stats.get(model.id),
                    lag_events=behind,
                    lag_seconds=None if oldest is None else max(0.0, time.time() - oldest.timestamp()),
                    stored_predictions=stats[model.id].predictions if model.id in stats else 0,
                )
            )
    return rows


async def set_status(name: str, status: registry.Status) -> ModelRecord:
    """Activate, deactivate or resume a model."""
    async with context.pool().acquire() as conn:
        return await registry.set_status(conn, name, status)
