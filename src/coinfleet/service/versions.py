"""Versions of a model: replace its file, promote any version, export one; rename the model.

A replacement is checked like any import (sandbox, features, dry run, ONNX) before anything changes,
so a refused file keeps the version that serves. Switching the served version is one statement; the
lane of the old version stops after its last batch and the new one starts at the model's cursor, so
no event is lost or scored twice, and every prediction records the version that made it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest, ModelLoadError
from coinfleet.models import registry
from coinfleet.models.bundle import META_SUFFIX, ModelBundle, write_bundle
from coinfleet.models.importing import ImportRequest, check_file, save_compiled
from coinfleet.models.registry import ModelVersion
from coinfleet.models.sandbox import SandboxLimits
from coinfleet.service.common import Db, as_dict, connection
from coinfleet.service.models import show_model
from coinfleet.service.schemas import Model, Schema


async def replace_model(
    db: Db, name: str, request: ImportRequest, *, limits: SandboxLimits, shadow: bool = False
) -> Model:
    """Check the file and store it as the model's next version; serve it now, or (`shadow`) score it beside
    the live version as a shadow model until `promote`. A refused file changes nothing."""
    current = await registry.get(db, name)
    checked = await check_file(request, limits=limits, current=current)
    async with connection(db) as conn, conn.transaction():
        version = await registry.add_version(conn, name, checked.model)
        await save_compiled(conn, hashlib.sha256(checked.model.artifact).hexdigest(), checked.found)
        if shadow:
            return await show_model(
                conn, (await registry.register_shadow(conn, current, version, checked.model)).name
            )
        await registry.switch_version(conn, name, version)
    return await show_model(db, name)


async def promote(db: Db, name: str, version: int) -> Model:
    """Serve `version` of the model (a newer one, a shadow's, or back to an older one) in one transaction;
    a shadow scoring that version stops. ModelNotFound names the versions there are."""
    async with connection(db) as conn, conn.transaction():
        live = await registry.switch_version(conn, name, version)
        for shadow in await registry.shadows_of(conn, live):
            if shadow.version == version:
                await registry.delete(conn, shadow.name)
    return await show_model(db, name)


class VersionScore(Schema):
    """One side of `compare`: a version's results on the events both sides scored."""

    side: Literal["live", "shadow"]
    version: int
    events: int  #: scored by both sides
    alerts: int
    evaluated: int
    hit_rate: float | None  #: success / (success + failed) at the horizon end
    alert_precision: float | None  #: the same over alerts
    alert_gain_avg_pct: float | None  #: mean price change of alerts in the target's direction


async def compare(db: Db, name: str) -> list[VersionScore]:
    """The live version and its shadow on the same events; InvalidRequest when no shadow scores."""
    live = await registry.get(db, name)
    shadows = await registry.shadows_of(db, live)
    if not shadows:
        raise InvalidRequest(f"model {name!r} has no shadow; `coinfleet models replace {name} FILE --shadow`")
    rows = await db.fetch(query("compare_on_same_events"), live.id, shadows[-1].id)
    return [_score(as_dict(row)) for row in rows]


def _score(row: dict[str, Any]) -> VersionScore:
    judged, alerts_judged = row["success"] + row["failed"], row["alerts_success"] + row["alerts_failed"]
    return VersionScore(
        side=row["side"],
        version=row["version"],
        events=row["events"],
        alerts=row["alerts"],
        evaluated=row["evaluated"],
        hit_rate=row["success"] / judged if judged else None,
        alert_precision=row["alerts_success"] / alerts_judged if alerts_judged else None,
        alert_gain_avg_pct=row["alert_gain_avg_pct"],
    )


async def list_versions(db: Db, name: str) -> list[ModelVersion]:
    """Every version of the model, oldest first."""
    return await registry.list_versions(db, name)


class VersionInfo(Schema):
    """One stored version of a model."""

    version: int
    serving: bool  #: the version the model's lane scores with now
    algorithm: str
    format: str
    target: str  #: e.g. "up 10% in 120s"
    features: list[str]
    sha256: str  #: of the stored file
    training_metrics: dict[str, Any]
    created_at: datetime


async def version_infos(db: Db, name: str) -> list[VersionInfo]:
    """Every version of the model, oldest first, the serving one marked; ModelNotFound otherwise."""
    serving = (await registry.get(db, name)).version
    return [
        VersionInfo(
            version=v.version,
            serving=v.version == serving,
            algorithm=v.algorithm,
            format=v.format,
            target=v.target.describe(),
            features=list(v.features),
            sha256=v.artifact_sha256,
            training_metrics=v.training_metrics,
            created_at=v.created_at,
        )
        for v in await registry.list_versions(db, name)
    ]


async def rename_model(db: Db, name: str, new_name: str) -> Model:
    """Give the model another name; ModelExists when it is taken, SettingError when not allowed."""
    async with connection(db) as conn:
        await registry.rename(conn, name, new_name)
    return await show_model(db, new_name)


async def export_model(db: Db, name: str, folder: Path, *, version: int | None = None) -> Path:
    """Write the model's file and a `NAME.model.json` that `models import` takes back; that file's path."""
    model = await registry.get(db, name)
    chosen = version or model.version
    versions = {v.version: v for v in await registry.list_versions(db, name)}
    if chosen not in versions:
        raise ModelLoadError(f"model {name!r} has no version {chosen}; its versions: {sorted(versions)}")
    meta = versions[chosen]
    bundle = ModelBundle(
        name=model.name,
        algorithm=meta.algorithm,
        format=meta.format,
        artifact=await registry.load_version_artifact(db, model.id, chosen),
        features=meta.features,
        target=meta.target,
        metrics=meta.training_metrics,
        alert_threshold=model.settings.alert_threshold,
    )
    return write_bundle(folder, bundle)


async def export_zip(db: Db, name: str, *, version: int | None = None) -> tuple[str, bytes]:
    """`export_model`'s two files in a zip archive (what the API sends): its file name and bytes."""
    with tempfile.TemporaryDirectory(prefix="coinfleet-export-") as folder:
        meta = await export_model(db, name, Path(folder), version=version)
        return f"{meta.name.removesuffix(META_SUFFIX)}.zip", await asyncio.to_thread(_zipped, Path(folder))


def _zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()
