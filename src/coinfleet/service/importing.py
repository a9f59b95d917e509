"""Import a model file from outside: a bare file or a bundle (`NAME.model.json` + artifact).

`import_file` is the one entry for every interface: the CLI reads files with `request_from_path`; the
API, which has the uploaded bytes already, builds the `ImportRequest` itself (bytes, file name, and
`parse_metadata` of the form's fields or `flag_metadata`). The file is checked in a sandboxed child
process (`sandbox_limits(settings)`), a pickle only when `trusted`; a refused file changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from coinfleet.config import Settings
from coinfleet.errors import ModelLoadError
from coinfleet.models import importing
from coinfleet.models.bundle import META_SUFFIX
from coinfleet.models.files import artifact_beside, read_limited
from coinfleet.models.importing import ImportRequest
from coinfleet.models.metadata import SIDECAR_MAX_BYTES, ModelMeta, parse_metadata, read_sidecar
from coinfleet.models.sandbox import SandboxLimits
from coinfleet.models.settings import ModelSettings
from coinfleet.service.common import Db, connection
from coinfleet.service.models import show_model
from coinfleet.service.schemas import Model

#: sidecar names looked for beside a bare model file, in this order
SIDECAR_SUFFIXES: tuple[str, ...] = (".meta.json", ".meta.toml")


def sandbox_limits(settings: Settings) -> SandboxLimits:
    """The limits of the child process that checks a model file."""
    return SandboxLimits(
        timeout_seconds=settings.model_check_timeout_seconds, memory_limit_mb=settings.model_check_memory_mb
    )


def request_from_path(
    path: Path,
    *,
    flags: ModelMeta,
    settings: Settings,
    meta_path: Path | None = None,
    artifact_path: Path | None = None,
    trusted: bool = False,
    activate: bool = False,
    model_settings: ModelSettings | None = None,
) -> ImportRequest:
    """Read a bundle or a bare file with its sidecar; `flags` win over what the files say."""
    max_bytes = settings.model_max_mb * 2**20
    if path.name.endswith(META_SUFFIX):
        meta_path = path
    sidecar = meta_path or _sidecar_of(path)
    meta = read_sidecar(sidecar) if sidecar is not None else ModelMeta()
    if sidecar is not None and path == sidecar:  # a bundle: the artifact it names, beside it
        artifact = artifact_path or artifact_beside(path, meta.artifact or "")
    else:
        artifact = artifact_path or path
    return ImportRequest(
        data=read_limited(artifact, max_bytes),
        filename=artifact.name,
        meta=replace(meta.merged(flags), artifact=None),
        trusted=trusted,
        activate=activate,
        settings=model_settings,
    )


def request_from_upload(
    data: bytes, filename: str, *, flags: ModelMeta, settings: Settings, meta: bytes | None = None
) -> ImportRequest:
    """An uploaded model file and its optional metadata (JSON, e.g. a bundle's `NAME.model.json`); `flags`
    win over the metadata. Never trusted: a pickle is refused over the network (the CLI's --trust is local).
    ModelLoadError when the file or the metadata is over its size limit or the metadata is not a JSON
    object."""
    max_bytes = settings.model_max_mb * 2**20
    if len(data) > max_bytes:
        raise ModelLoadError(
            f"{filename} is larger than the limit of {settings.model_max_mb:g} MB (COINFLEET_MODEL_MAX_MB)"
        )
    found = ModelMeta()
    if meta is not None:
        if len(meta) > SIDECAR_MAX_BYTES:
            raise ModelLoadError(
                f"the metadata is larger than {SIDECAR_MAX_BYTES // 1024} KB; it holds a few fields"
            )
        try:
            fields = json.loads(meta)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"the metadata is not JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise ModelLoadError("the metadata must be a JSON object of fields")
        found = parse_metadata(fields)
    return ImportRequest(data=data, filename=filename, meta=replace(found.merged(flags), artifact=None))


def _sidecar_of(path: Path) -> Path | None:
    for suffix in SIDECAR_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


async def import_file(db: Db, request: ImportRequest, *, limits: SandboxLimits) -> Model:
    """Check the file in a sandbox and register it (and activate it if asked); nothing changes when it is
    refused. ModelLoadError says why a file is refused, ModelExists when the name is taken, SettingError
    when the name is not allowed."""
    async with connection(db) as conn:
        record = await importing.import_file(conn, request, limits=limits)
    return await show_model(db, record.name)
