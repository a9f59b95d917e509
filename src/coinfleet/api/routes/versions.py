"""/api/models/{name}/…: versions (list, new version, shadow, promote or roll back, compare), export,
and the webhook signing secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, Field

from coinfleet.api.auth import require_read, require_write
from coinfleet.api.routes.deps import AppSettings, ModelName, Pool
from coinfleet.errors import ModelLoadError
from coinfleet.models.formats import SUFFIXES
from coinfleet.models.metadata import flag_metadata
from coinfleet.service import alerts, versions
from coinfleet.service.importing import request_from_upload, sandbox_limits
from coinfleet.service.schemas import Model
from coinfleet.service.versions import VersionInfo, VersionScore

router = APIRouter(prefix="/api/models", tags=["versions"])
READ = [Depends(require_read)]
WRITE = [Depends(require_write)]


class Promote(BaseModel):
    """Which version to serve."""

    version: int = Field(ge=1, le=2**31 - 1, description="a version `GET …/versions` lists")


class SecretChange(BaseModel):
    """The webhook signing secret to use; leave `secret` out to have a random one made."""

    secret: str | None = Field(
        None, min_length=16, max_length=1000, description="at least 16 characters; omitted: a random one"
    )


class SecretRotated(BaseModel):
    """The result of a secret change: a generated secret is shown here once and never again."""

    model: str
    generated: bool
    secret: str | None = Field(description="the new secret when it was generated; None when you sent it")


@router.get(
    "/{name}/versions", response_model=list[VersionInfo], dependencies=READ, summary="A model's versions"
)
async def list_versions(db: Pool, name: ModelName) -> list[VersionInfo]:
    """Every stored version, oldest first; `serving` marks the one the lane scores with."""
    return await versions.version_infos(db, name)


async def _read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelLoadError(f"{upload.filename or 'the upload'} is larger than {max_bytes // 2**20} MB")
    return data


@router.post(
    "/{name}/versions",
    response_model=Model,
    status_code=201,
    dependencies=WRITE,
    summary="Serve a new version, or score it as a shadow (multipart)",
)
async def new_version(
    db: Pool,
    settings: AppSettings,
    name: ModelName,
    file: Annotated[UploadFile, File(description=f"the model file ({', '.join(SUFFIXES)})")],
    meta: Annotated[UploadFile | None, File(description="its metadata JSON (e.g. NAME.model.json)")] = None,
    features: Annotated[str | None, Form(description="feature names; default: the serving version's")] = None,
    target: Annotated[
        str | None, Form(description="e.g. 'up 10% in 120s'; default: the serving one's")
    ] = None,
    format: Annotated[str | None, Form(description="the file's format when its suffix does not say")] = None,
    shadow: Annotated[
        bool, Form(description="score it beside the live version (no alerts) until promoted")
    ] = False,
) -> Model:
    """Check the file like an import (sandbox, features, dry run); serve it as the next version, or with
    `shadow` register a shadow model that scores it beside the live one. A refused file changes nothing.
    Pickles are refused here (trusting one is a local decision: `coinfleet models replace --trust`)."""
    max_bytes = settings.model_max_mb * 2**20
    request = request_from_upload(
        await _read_upload(file, max_bytes),
        file.filename or "upload",
        flags=flag_metadata(features=features, target=target, fmt=format),
        settings=settings,
        meta=None if meta is None else await _read_upload(meta, max_bytes),
    )
    return await versions.replace_model(db, name, request, limits=sandbox_limits(settings), shadow=shadow)


@router.post("/{name}/promote", response_model=Model, dependencies=WRITE, summary="Serve another version")
async def promote(db: Pool, name: ModelName, body: Promote) -> Model:
    """Serve `version` (newer, a shadow's, or an older one to roll back) in one transaction; the lane
    restarts at the model's cursor, so nothing is lost or scored twice. 404 names the versions there are."""
    return await versions.promote(db, name, body.version)


@router.get(
    "/{name}/compare",
    response_model=list[VersionScore],
    dependencies=READ,
    summary="The live version beside its shadow",
)
async def compare(db: Pool, name: ModelName) -> list[VersionScore]:
    """Hit rate, alert precision and alert gain of both on the events both scored; 422 without a shadow."""
    return await versions.compare(db, name)


@router.get(
    "/{name}/export",
    response_class=Response,
    dependencies=READ,
    summary="Download a version as a zip (model file and NAME.model.json)",
    responses={200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def export(
    db: Pool,
    name: ModelName,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="default: the serving one")] = None,
) -> Response:
    """The files `coinfleet models export` writes, zipped; `coinfleet models import` takes them back."""
    filename, data = await versions.export_zip(db, name, version=version)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(data, media_type="application/zip", headers=headers)


@router.post(
    "/{name}/webhook-secret",
    response_model=SecretRotated,
    dependencies=WRITE,
    summary="Replace the webhook signing secret",
)
async def rotate_secret(
    db: Pool, name: ModelName, response: Response, body: Annotated[SecretChange | None, Body()] = None
) -> SecretRotated:
    """Sign the next delivery attempts with a new secret: the one sent, or a random one that this answer
    shows once. No route shows a secret otherwise (`coinfleet alerts secret NAME --show` does, locally)."""
    given = None if body is None else body.secret
    secret = await alerts.rotate_webhook_secret(db, name, given)
    response.headers["Cache-Control"] = "no-store"
    return SecretRotated(model=name, generated=given is None, secret=secret if given is None else None)
