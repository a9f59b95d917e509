"""Model operations beyond status and settings: rename, and delete with or without its history."""

from __future__ import annotations

import asyncpg
import structlog
from pydantic import BaseModel

from coinfleet.db.sql import query
from coinfleet.errors import ModelExists, SettingError
from coinfleet.models import registry

log = structlog.get_logger(__name__)


class Deleted(BaseModel):
    """What a delete removed."""

    name: str  #: the name the model had (free again)
    model_id: int
    predictions_removed: int  #: 0 unless its history was deleted too


async def rename_model(pool: asyncpg.Pool, name: str, new_name: str) -> registry.ModelRecord:
    """Give a model another name (lanes follow live); ModelExists when taken, SettingError when invalid."""
    async with pool.acquire() as conn:
        model = await registry.get(conn, name)
        try:
            await conn.execute(query("rename_model"), model.id, new_name)
        except asyncpg.UniqueViolationError:
            raise ModelExists(f"a model named {new_name!r} exists already; choose another name") from None
        except asyncpg.CheckViolationError:
            raise SettingError(
                f"model name {new_name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'"
            ) from None
        log.info("model_renamed", model_id=model.id, old=name, new=new_name)
        return await registry.get_by_id(conn, model.id)


async def delete_model(pool: asyncpg.Pool, name: str, *, with_history: bool) -> Deleted:
    """Stop and delete a model, freeing its name; `with_history` also removes its predictions,
    evaluations and alerts (otherwise statistics and coin pages keep showing them)."""
    async with pool.acquire() as conn, conn.transaction():
        model = await registry.get(conn, name)
        removed = 0
        if with_history:
            await conn.execute(query("delete_model_alerts"), model.id)
            await conn.execute(query("delete_model_evaluations"), model.id)
            removed = int(await conn.fetchval(query("delete_model_predictions"), model.id))
        await conn.execute(query("delete_model"), model.id)
    log.info("model_deleted", model_id=model.id, name=name, predictions_removed=removed)
    return Deleted(name=name, model_id=model.id, predictions_removed=removed)
