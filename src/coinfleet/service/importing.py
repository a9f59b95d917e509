"""Import a model from files on disk: a bundle (`NAME.model.json` + artifact) or a bare model file.

The entry points call `import_model`; the API, which has the bytes already, builds an `ImportRequest`
itself and calls `models.importing.import_file` with `sandbox_limits(settings)`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg

from coinfleet.config import Settings
from coinfleet.models.bundle import META_SUFFIX
from coinfleet.models.files import artifact_beside, read_limited
from coinfleet.models.importing import ImportRequest, import_file
from coinfleet.models.metadata import ModelMeta, read_sidecar
from coinfleet.models.registry import ModelRecord
from coinfleet.models.sandbox import SandboxLimits
from coinfleet.models.settings import ModelSettings

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


def _sidecar_of(path: Path) -> Path | None:
    for suffix in SIDECAR_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


async def import_model(conn: asyncpg.Connection, request: ImportRequest, settings: Settings) -> ModelRecord:
    """Check the file in a sandbox and register it; nothing changes when it is refused."""
    return await import_file(conn, request, limits=sandbox_limits(settings))
