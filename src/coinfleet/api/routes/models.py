"""/api/models: list, show, import, activate, deactivate, resume, settings, rename, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from coinfleet.api.auth import require_read, require_write
from coinfleet.api.routes.deps import AppSettings, ModelName, Pool
from coinfleet.errors import ModelLoadError
from coinfleet.models.bundle import ARTIFACT_SUFFIX, ModelBundle, bundle_from_meta
from coinfleet.service import model_admin, versions
from coinfleet.service import models as service
from coinfleet.service.model_admin import Deleted
from coinfleet.service.schemas import Model

router = APIRouter(prefix="/api/models", tags=["models"])
READ = [Depends(require_read)]
WRITE = [Depends(require_write)]
#: largest model file or metadata an import accepts
MAX_UPLOAD_BYTES = 256 * 1024 * 1024


class Rename(BaseModel):
    """A model's new name."""

    new_name: str = Field(min_length=1, max_length=64, description="1-64 letters, digits, '_', '.', '-'")


@router.get("", response_model=list[Model], dependencies=READ, summary="Every model with its lane")
async def list_models(db: Pool) -> list[Model]:
    """Models that are not deleted, oldest first, each with lag, counters and quarantine reason."""
    return await service.list_models(db)


@router.get("/{name}", response_model=Model, dependencies=READ, summary="One model with its lane")
async def show_model(db: Pool, name: ModelName) -> Model:
    """Everything about one model; 404 when there is none of that name."""
    return await service.show_model(db, name)


async def _read_upload(upload: UploadFile, what: str) -> bytes:
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ModelLoadError(f"the {what} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
    return data


def bundle_from_upload(meta: bytes, artifact: bytes, name: str | None) -> ModelBundle:
    """A bundle from an uploaded NAME.model.json and its model file; ModelLoadError when malformed."""
    try:
        return bundle_from_meta(json.loads(meta), artifact, name=name)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"the metadata is not a coinfleet model bundle (NAME.model.json): {exc}"
        ) from exc


@router.post(
    "", response_model=Model, status_code=201, dependencies=WRITE, summary="Import a model (multipart)"
)
async def import_model(
    db: Pool,
    meta: Annotated[UploadFile, File(description="the NAME.model.json written by `coinfleet train`")],
    artifact: Annotated[
        UploadFile, File(description=f"the model file it names ({', '.join(ARTIFACT_SUFFIX.values())})")
    ],
    name: Annotated[str | None, Form(description="register under this name instead")] = None,
    activate: Annotated[bool, Form(description="start scoring right away")] = False,
) -> Model:
    """Validate (loads, features known, dry run in [0, 1]) and register; a failed import changes nothing."""
    bundle = bundle_from_upload(
        await _read_upload(meta, "metadata"), await _read_upload(artifact, "model file"), name
    )
    return await service.import_model(db, bundle, activate=activate)


@router.post("/{name}/activate", response_model=Model, dependencies=WRITE, summary="Start scoring")
async def activate(db: Pool, name: ModelName) -> Model:
    """Score new events with this model (running lanes pick it up live)."""
    return await service.activate_model(db, name)


@router.post("/{name}/deactivate", response_model=Model, dependencies=WRITE, summary="Stop scoring")
async def deactivate(db: Pool, name: ModelName) -> Model:
    """Stop scoring with this model; its predictions stay."""
    return await service.deactivate_model(db, name)


@router.post("/{name}/resume", response_model=Model, dependencies=WRITE, summary="Resume a quarantined model")
async def resume(db: Pool, name: ModelName) -> Model:
    """Bring a quarantined model back at its cursor (nothing was lost); 409 when it is not quarantined."""
    return await service.resume_model(db, name)


@router.patch("/{name}/settings", response_model=Model, dependencies=WRITE, summary="Change settings")
async def update_settings(
    db: Pool,
    settings: AppSettings,
    name: ModelName,
    changes: Annotated[
        dict[str, Any], Body(description='setting → new value, e.g. {"alert_threshold": 0.8}')
    ],
) -> Model:
    """Apply the changes with the CLI's validation (422 names the bad key); live without restart."""
    return await service.update_settings(db, name, changes, allow_private=settings.webhook_allow_private)


@router.post("/{name}/rename", response_model=Model, dependencies=WRITE, summary="Rename a model")
async def rename(db: Pool, name: ModelName, body: Rename) -> Model:
    """Give the model another name; 409 when the name is taken."""
    return await versions.rename_model(db, name, body.new_name)


@router.delete("/{name}", response_model=Deleted, dependencies=WRITE, summary="Delete a model")
async def delete(
    db: Pool,
    name: ModelName,
    history: Annotated[
        bool, Query(description="also delete its predictions, evaluations and alerts")
    ] = False,
) -> Deleted:
    """Stop and delete the model and free its name; with `history=true` its stored rows go too."""
    return await model_admin.delete_model(db, name, with_history=history)
