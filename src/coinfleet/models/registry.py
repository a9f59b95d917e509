"""The model registry: coinfleet_models rows as `ModelRecord`s, and the changes operators make."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import asyncpg

from coinfleet.db.sql import query
from coinfleet.errors import ModelExists, ModelNotFound, SettingError
from coinfleet.events.cursor import reset_cursor_to_now
from coinfleet.models.settings import ModelSettings, apply_to_stored, stored_settings
from coinfleet.models.spec import ModelDescription, ModelSpec
from coinfleet.targets import TargetSpec

Status = Literal["active", "inactive", "quarantined", "deleted"]
#: the newest metric rows whose phases count as the phases that exist (a bounded look, by time index)
RECENT_PHASE_ROWS = 100_000


@dataclass(frozen=True, kw_only=True)
class NewModel(ModelSpec):
    """Everything needed to register a model."""

    name: str
    settings: ModelSettings
    training_metrics: dict[str, Any]
    #: where the file came from and how it serves (see `models.importing`)
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ModelRecord(ModelDescription):
    """A registered model, without its artifact bytes."""

    id: int
    name: str
    version: int
    artifact_sha256: str
    settings: ModelSettings
    training_metrics: dict[str, Any]
    source: dict[str, Any]
    status: Status
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    #: why the stored settings no longer validate (`settings` then holds defaults, and the model is
    #: never run: the supervisor quarantines it with this reason); None when they are fine
    settings_error: str | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ModelRecord:
        """Build from a row of the model queries; settings that no longer validate fail this model
        alone (see `settings_error`)."""
        settings, settings_error = stored_settings(row["settings"])
        return cls(
            **_stored_version(row),
            id=row["id"],
            name=row["name"],
            settings=settings,
            settings_error=settings_error,
            status=row["status"],
            status_reason=row["status_reason"],
            updated_at=row["updated_at"],
        )


async def register(conn: asyncpg.Connection, model: NewModel) -> ModelRecord:
    """Store a new, inactive model; its cursor starts at the current horizon."""
    try:
        model_id = await _insert(conn, model)
    except asyncpg.UniqueViolationError:
        raise ModelExists(
            f"a model named {model.name!r} exists already; choose another name or delete that one first"
        ) from None
    except asyncpg.CheckViolationError:
        raise SettingError(
            f"model name {model.name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'"
        ) from None
    return await get_by_id(conn, model_id)


async def _insert(conn: asyncpg.Connection, model: NewModel) -> int:
    async with conn.transaction():
        model_id: int = await conn.fetchval(
            query("insert_model"),
            model.name,
            model.algorithm,
            model.format,
            model.artifact,
            model.sha256,
            list(model.features),
            json.dumps(model.target.to_dict()),
            model.settings.model_dump_json(),
            json.dumps(model.training_metrics),
            json.dumps(model.source),
        )
        await conn.execute(query("insert_first_version"), model_id)
        await reset_cursor_to_now(conn, model_id)
    return model_id


async def list_models(conn: asyncpg.Connection) -> list[ModelRecord]:
    """All models that are not deleted, oldest first."""
    return [ModelRecord.from_row(r) for r in await conn.fetch(query("list_models"))]


async def get(conn: asyncpg.Connection, name: str) -> ModelRecord:
    """The model called `name`; ModelNotFound otherwise."""
    row = await conn.fetchrow(query("get_model_by_name"), name)
    if row is None:
        raise ModelNotFound(f"no model named {name!r}; `coinfleet models list` shows the names")
    return ModelRecord.from_row(row)


async def get_by_id(conn: asyncpg.Connection, model_id: int) -> ModelRecord:
    """The model with this id (deleted ones too)."""
    row = await conn.fetchrow(query("get_model_by_id"), model_id)
    if row is None:
        raise ModelNotFound(f"no model with id {model_id}")
    return ModelRecord.from_row(row)


async def find_by_predecessor_id(conn: asyncpg.Connection, predecessor_id: int) -> ModelRecord | None:
    """The model brought over from the predecessor's model with this id, if any."""
    row = await conn.fetchrow(query("get_model_by_predecessor_id"), str(predecessor_id))
    return None if row is None else ModelRecord.from_row(row)


async def load_artifact(conn: asyncpg.Connection, model_id: int) -> bytes:
    """The model file bytes as imported."""
    data: bytes | None = await conn.fetchval(query("get_artifact"), model_id)
    if data is None:
        raise ModelNotFound(f"no model with id {model_id}")
    return data


async def set_status(
    conn: asyncpg.Connection, name: str, status: Status, reason: str | None = None
) -> ModelRecord:
    """Change a model's status; activating starts it on new events (its old backlog is skipped)."""
    model = await get(conn, name)
    async with conn.transaction():
        if status == "active" and model.status == "inactive":
            await reset_cursor_to_now(conn, model.id)
        await conn.execute(query("set_model_status"), model.id, status, reason)
    return await get_by_id(conn, model.id)


async def update_settings(conn: asyncpg.Connection, name: str, settings: ModelSettings) -> ModelRecord:
    """Replace a model's settings; running lanes pick them up without restart."""
    model = await get(conn, name)
    await conn.execute(query("set_model_settings"), model.id, settings.model_dump_json())
    return await get_by_id(conn, model.id)


async def change_settings(conn: asyncpg.Connection, name: str, changes: dict[str, Any]) -> ModelRecord:
    """Apply `changes` to a model's stored settings, atomically: concurrent changes to other keys are
    kept (the row is locked from read to write). Stored settings that no longer validate can be
    repaired this way. SettingError when the result is invalid or names phases no row has."""
    async with conn.transaction():
        row = await conn.fetchrow(query("lock_model_settings"), name)
        if row is None:
            raise ModelNotFound(f"no model named {name!r}; `coinfleet models list` shows the names")
        stored = json.loads(row["settings"])
        settings = apply_to_stored(stored if isinstance(stored, dict) else {}, changes)
        if "phases" in changes and settings.phases is not None:
            await _refuse_unseen_phases(conn, settings.phases)
        await conn.execute(query("set_model_settings"), row["id"], settings.model_dump_json())
    return await get_by_id(conn, row["id"])


async def _refuse_unseen_phases(conn: asyncpg.Connection, phases: list[int]) -> None:
    """SettingError when metric rows exist but none of the recent ones is in one of `phases`."""
    seen = set(await conn.fetchval(query("recent_phases"), RECENT_PHASE_ROWS) or [])
    unseen = [p for p in phases if p not in seen]
    if seen and unseen:
        raise SettingError(
            f"phases {', '.join(map(str, unseen))} occur in none of the newest {RECENT_PHASE_ROWS} metric "
            f"rows (they have phases {', '.join(map(str, sorted(seen)))}); "
            "a model restricted to phases that never come scores nothing"
        )


@dataclass(frozen=True, kw_only=True)
class ModelVersion(ModelDescription):
    """One version of a model's file and metadata."""

    version: int
    artifact_sha256: str
    training_metrics: dict[str, Any]
    source: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ModelVersion:
        """Build from a row of `list_versions`."""
        return cls(**_stored_version(row))


def _stored_version(row: asyncpg.Record) -> dict[str, Any]:
    """The fields of a stored version (ModelVersion's) from a row of the model or version queries."""
    return {
        "version": row["version"],
        "algorithm": row["algorithm"],
        "format": row["format"],
        "artifact_sha256": row["artifact_sha256"],
        "features": tuple(row["features"]),
        "target": TargetSpec.from_dict(json.loads(row["target"])),
        "training_metrics": json.loads(row["training_metrics"]),
        "source": json.loads(row["source"]),
        "created_at": row["created_at"],
    }


async def add_version(conn: asyncpg.Connection, name: str, model: NewModel) -> int:
    """Store `model`'s file and metadata as the next version of model `name`; its number (not served yet)."""
    current = await get(conn, name)
    async with conn.transaction():
        await conn.execute(query("lock_model"), current.id)
        version: int = await conn.fetchval(
            query("insert_version"),
            current.id,
            model.algorithm,
            model.format,
            model.artifact,
            model.sha256,
            list(model.features),
            json.dumps(model.target.to_dict()),
            json.dumps(model.training_metrics),
            json.dumps(model.source),
        )
    return version


async def switch_version(conn: asyncpg.Connection, name: str, version: int) -> ModelRecord:
    """Serve `version` of model `name` from now on (in one statement: lanes see the old or the new)."""
    model = await get(conn, name)
    if await conn.fetchval(query("switch_version"), model.id, version) is None:
        known = ", ".join(str(v.version) for v in await list_versions(conn, name))
        raise ModelNotFound(f"model {name!r} has no version {version}; its versions: {known}")
    return await get_by_id(conn, model.id)


async def list_versions(conn: asyncpg.Connection, name: str) -> list[ModelVersion]:
    """Every version of model `name`, oldest first."""
    model = await get(conn, name)
    return [ModelVersion.from_row(r) for r in await conn.fetch(query("list_versions"), model.id)]


async def load_version_artifact(conn: asyncpg.Connection, model_id: int, version: int) -> bytes:
    """The file of one version of a model."""
    data: bytes | None = await conn.fetchval(query("get_version_artifact"), model_id, version)
    if data is None:
        raise ModelNotFound(f"model {model_id} has no version {version}")
    return data


async def rename(conn: asyncpg.Connection, name: str, new_name: str) -> ModelRecord:
    """Give model `name` another name; its predictions, versions and settings stay with it."""
    model = await get(conn, name)
    try:
        await conn.execute(query("rename_model"), model.id, new_name)
    except asyncpg.UniqueViolationError:
        raise ModelExists(f"a model named {new_name!r} exists already; choose another name") from None
    except asyncpg.CheckViolationError:
        raise SettingError(
            f"model name {new_name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'"
        ) from None
    return await get_by_id(conn, model.id)


async def delete(conn: asyncpg.Connection, name: str) -> ModelRecord:
    """Stop and hide model `name`; its predictions stay, and its name is free for another model."""
    model = await get(conn, name)
    async with conn.transaction():
        await conn.execute(query("set_model_status"), model.id, "deleted", "deleted by operator")
        await conn.execute(query("rename_model"), model.id, f"{name[:40]}.deleted.{model.id}")
    return await get_by_id(conn, model.id)


async def register_shadow(
    conn: asyncpg.Connection, live: ModelRecord, version: int, model: NewModel
) -> ModelRecord:
    """An active model scoring `version` of `live` beside it: its own lane, runner and cursor, the live
    model's settings but no webhook, its predictions recorded as that version."""
    name = f"{live.name[:50]}.shadow"
    settings = live.settings.model_copy(update={"webhook_enabled": False, "webhook_url": None})
    source = {**model.source, "shadow_of": str(live.id), "shadow_version": version}
    async with conn.transaction():
        for old in await shadows_of(conn, live):
            await delete(conn, old.name)
        shadow = await register(conn, replace(model, name=name, settings=settings, source=source))
        await conn.execute(query("set_shadow_version"), shadow.id, version)
        return await set_status(conn, name, "active")


async def shadows_of(conn: asyncpg.Connection, live: ModelRecord) -> list[ModelRecord]:
    """The shadow models scoring beside `live`."""
    return [ModelRecord.from_row(r) for r in await conn.fetch(query("shadows_of"), str(live.id))]
