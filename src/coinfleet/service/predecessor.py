"""`coinfleet migrate-from-pump-server`: bring the predecessor's models, settings and history over.

Reads its tables (in coinfleet's database or another) and, per model: checks and imports the model
file (a pickle only when trusted, in the sandbox like any import), carries over its settings, and
copies its prediction log with evaluations and ATH, so its statistics continue, and the ignore windows
still running in its scan cache (`coin_scan_cache`). Idempotent: a model already brought over (by its
id there) is not imported again, history rows already stored (same model, coin and time) are skipped,
and so are windows of coins coinfleet already keeps scan state for, so a second run changes nothing.
What cannot be taken is reported with the reason and changes nothing for that model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from coinfleet.config import Settings
from coinfleet.db.database import open_database
from coinfleet.db.sql import query
from coinfleet.errors import CoinfleetError, DatabaseError
from coinfleet.models import registry
from coinfleet.models.files import read_limited
from coinfleet.models.importing import ImportRequest, import_file
from coinfleet.models.metadata import ModelMeta, parse_metadata
from coinfleet.models.predecessor import HISTORY_COLUMNS, history_row, settings_from_row
from coinfleet.models.registry import ModelRecord
from coinfleet.service.importing import sandbox_limits

#: history rows read from the predecessor and written per statement
HISTORY_CHUNK = 5000


@dataclass(frozen=True, kw_only=True)
class MoveOverOptions:
    """Where the model files are and whether pickles may be loaded."""

    models_dir: Path | None = None  #: files are looked up here by file name (else at the stored path)
    trusted: bool = False  #: load the predecessor's joblib pickles (runs their code)


@dataclass(kw_only=True)
class ModelOutcome:
    """What happened to one of the predecessor's models."""

    predecessor_id: int
    name: str
    status: str  #: imported, present (from an earlier run), or skipped
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    predictions: int = 0  #: history rows added now
    evaluations: int = 0
    ignore_windows: int = 0  #: ignore windows still running there, carried into the scan cache now


@dataclass(kw_only=True)
class MoveOverReport:
    """Per model: imported, already present, or skipped and why."""

    models: list[ModelOutcome] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether this run changed anything."""
        return any(m.status == "imported" or m.predictions or m.ignore_windows for m in self.models)


async def move_over(
    source: asyncpg.Connection, target: asyncpg.Connection, options: MoveOverOptions, settings: Settings
) -> MoveOverReport:
    """Bring every model of the predecessor's database `source` into coinfleet's `target`."""
    tables = await source.fetchrow(query("predecessor_has_tables"))
    if not tables["models"]:
        raise CoinfleetError(
            "no prediction_active_models table in that database; give the predecessor's with --database-url"
        )
    report = MoveOverReport()
    for row in await source.fetch(query("predecessor_models")):
        outcome = await _move_model(target, dict(row), options, settings)
        model = None
        if outcome.status != "skipped":
            model = await registry.find_by_predecessor_id(target, outcome.predecessor_id)
        if model is not None and tables["predictions"]:
            await _copy_history(source, target, model, outcome)
        if model is not None and tables["scan_cache"]:
            await _carry_ignore_windows(source, target, model, outcome)
        report.models.append(outcome)
    return report


async def _move_model(
    target: asyncpg.Connection, row: dict[str, Any], options: MoveOverOptions, settings: Settings
) -> ModelOutcome:
    meta = parse_metadata(row)
    outcome = ModelOutcome(predecessor_id=int(row["id"]), name=meta.name or f"model-{row['id']}", status="")
    existing = await registry.find_by_predecessor_id(target, outcome.predecessor_id)
    if existing is not None:
        outcome.name, outcome.status = existing.name, "present"
        return outcome
    carried = settings_from_row(row)
    outcome.notes.extend(carried.notes)
    try:
        path = _model_file(str(row.get("local_model_path") or ""), options.models_dir)
        record = await import_file(
            target,
            ImportRequest(
                data=read_limited(path, settings.model_max_mb * 2**20),
                filename=path.name,
                meta=await _free_name(target, meta, outcome),
                trusted=options.trusted,
                settings=carried.settings,
                activate=row.get("is_active") is not False,
                source={"predecessor_id": str(row["id"]), "predecessor_model_id": row.get("model_id")},
            ),
            limits=sandbox_limits(settings),
        )
    except CoinfleetError as exc:
        outcome.status, outcome.reason = "skipped", str(exc)
        return outcome
    outcome.name, outcome.status = record.name, "imported"
    return outcome


def _model_file(stored: str, models_dir: Path | None) -> Path:
    if not stored:
        raise CoinfleetError("the model has no local_model_path")
    return models_dir / Path(stored).name if models_dir is not None else Path(stored)


async def _free_name(target: asyncpg.Connection, meta: ModelMeta, outcome: ModelOutcome) -> ModelMeta:
    """The metadata with a name no other coinfleet model has (the predecessor's id appended if needed)."""
    try:
        await registry.get(target, outcome.name)
    except CoinfleetError:
        return replace(meta, name=outcome.name)
    outcome.notes.append(
        f"a model named {outcome.name!r} exists; named {outcome.name}-{outcome.predecessor_id}"
    )
    outcome.name = f"{outcome.name}-{outcome.predecessor_id}"[-64:]
    return replace(meta, name=outcome.name)


async def _copy_history(
    source: asyncpg.Connection, target: asyncpg.Connection, model: ModelRecord, outcome: ModelOutcome
) -> None:
    """The model's prediction log, in chunks; every chunk commits with its counts (set-based)."""
    async with source.transaction():
        cursor = await source.cursor(query("predecessor_predictions"), outcome.predecessor_id)
        while rows := await cursor.fetch(HISTORY_CHUNK):
            added, evaluated = await _store_history(
                target, model, [history_row(r, model.target) for r in rows]
            )
            outcome.predictions += added
            outcome.evaluations += evaluated


async def _store_history(
    target: asyncpg.Connection, model: ModelRecord, rows: list[tuple[Any, ...]]
) -> tuple[int, int]:
    async with target.transaction():
        await target.execute(query("create_history_rows"))
        await target.copy_records_to_table("coinfleet_history_rows", records=rows, columns=HISTORY_COLUMNS)
        counts = await target.fetchrow(
            query("insert_history"),
            model.id,
            model.version,
            model.settings.alert_threshold,
            json_target(model),
        )
        await target.execute(query("close_evaluated_history"), model.id)
        await target.execute(query("count_history"), model.id, counts["predictions"], counts["newest"])
    return int(counts["predictions"]), int(counts["evaluations"])


async def _carry_ignore_windows(
    source: asyncpg.Connection, target: asyncpg.Connection, model: ModelRecord, outcome: ModelOutcome
) -> None:
    """The model's ignore windows still running in the predecessor's `coin_scan_cache`, so a coin it
    alerted on just before the move-over is not alerted on again within its window. The rest of that
    cache (last scan, last result) coinfleet rebuilds from the predictions brought over."""
    windows = await source.fetch(query("predecessor_ignore_windows"), outcome.predecessor_id)
    if not windows:
        return
    columns = ("mint", "ignore_until", "ignore_reason", "last_scan_at", "last_probability", "last_tag")
    arrays = [[w[column] for w in windows] for column in columns]
    outcome.ignore_windows += int(await target.fetchval(query("carry_ignore_windows"), model.id, *arrays))


def json_target(model: ModelRecord) -> str:
    """The model's target as the predictions table stores it."""
    return json.dumps(model.target.to_dict())


async def migrate_from_pump_server(
    settings: Settings, options: MoveOverOptions, *, database_url: str | None = None
) -> MoveOverReport:
    """`move_over` from the predecessor's database at `database_url` (default: coinfleet's own)."""
    async with open_database(settings, stop_on_exit=False) as db, db.pool.acquire() as target:
        if database_url is None:
            async with db.pool.acquire() as source:
                return await move_over(source, target, options, settings)
        try:
            source = await asyncpg.connect(database_url)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseError(f"cannot connect to the predecessor's database: {exc}") from exc
        try:
            return await move_over(source, target, options, settings)
        finally:
            await source.close()
