"""Deleting a model together with its history (predictions, evaluations, alerts)."""

from __future__ import annotations

import structlog
from pydantic import BaseModel

from coinfleet.db.sql import query
from coinfleet.models import registry
from coinfleet.service.common import Db, connection

log = structlog.get_logger(__name__)


class Deleted(BaseModel):
    """What a delete removed."""

    name: str  #: the name the model had (free again)
    model_id: int
    predictions_removed: int  #: 0 unless its history was deleted too


async def delete_model(db: Db, name: str, *, with_history: bool) -> Deleted:
    """Stop and delete a model, freeing its name (the registry's delete); `with_history` also removes
    its predictions, evaluations and alerts in the same transaction (otherwise statistics and coin
    pages keep showing them)."""
    async with connection(db) as conn, conn.transaction():
        model = await registry.get(conn, name)
        removed = 0
        if with_history:
            await conn.execute(query("delete_model_alerts"), model.id)
            await conn.execute(query("delete_model_evaluations"), model.id)
            removed = int(await conn.fetchval(query("delete_model_predictions"), model.id))
        await registry.delete(conn, name)
    log.info("model_deleted", model_id=model.id, name=name, predictions_removed=removed)
    return Deleted(name=name, model_id=model.id, predictions_removed=removed)
