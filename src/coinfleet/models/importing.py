"""Importing a model: validate everything first, so a failed import changes nothing.

A file from outside (`import_file`) is loaded, dry-run and compiled only in a throwaway child process
(models/sandbox.py) with a timeout and a memory limit; a pickle only when the caller trusts it, and
then it is stored converted to a format that loads without running code, its own hash recorded.
A bundle that `coinfleet train` has just made in this process (`import_bundle`) is checked in-process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import asyncpg

from coinfleet.db.sql import query
from coinfleet.errors import ModelLoadError
from coinfleet.features.spec import validate_feature_names
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.compile import recipe
from coinfleet.models.files import detect_file_format
from coinfleet.models.formats import FORMATS, load_predictor, validate_predictor
from coinfleet.models.metadata import ModelMeta, safe_name
from coinfleet.models.registry import ModelRecord, NewModel
from coinfleet.models.sandbox import SandboxLimits, run_job
from coinfleet.models.settings import ModelSettings
from coinfleet.targets import TargetSpec

#: what loading a pickle means, said wherever one is refused or accepted
PICKLE_WARNING = (
    "loading a pickle (joblib, .pkl) runs whatever code it contains; import it only if you trust "
    "where it came from, with --trust"
)


@dataclass(frozen=True, kw_only=True)
class ImportRequest:
    """A model file from outside and what is known about it."""

    data: bytes  #: the file's bytes as given
    filename: str  #: its name, for the format's suffix and a default model name
    meta: ModelMeta  #: metadata from a sidecar, flags or the predecessor's row
    trusted: bool = False  #: the caller trusts a pickle's code (--trust)
    settings: ModelSettings | None = None  #: settings; default: the metadata's threshold and phases
    activate: bool = False
    source: dict[str, Any] | None = None  #: extra provenance to record (e.g. the predecessor's id)


@dataclass(frozen=True, kw_only=True)
class Inspection:
    """What the sandboxed check found out about a file."""

    format: str  #: of the artifact to store (a trusted pickle's converted form)
    artifact: bytes
    algorithm: str
    n_features: int
    feature_names: tuple[str, ...] | None  #: the names the file carries, if any
    onnx: bytes | None  #: the verified compiled graph
    reason: str | None  #: why the original serves, when not compiled
    max_delta: float | None


async def inspect_in_sandbox(
    fmt: str, data: bytes, *, n_features: int | None, trusted: bool, limits: SandboxLimits
) -> Inspection:
    """Load, dry-run and compile a file in a child process; ModelLoadError (SandboxError) says why not."""
    if fmt == "pickle" and not trusted:
        raise ModelLoadError(f"refused a pickled model without --trust: {PICKLE_WARNING}")
    if fmt not in (*FORMATS, "pickle"):
        raise ModelLoadError(f"unknown model format {fmt!r}; use one of {', '.join((*FORMATS, 'pickle'))}")
    header, payload = await run_job(
        "coinfleet.models.inspection:inspect_file",
        {"format": fmt, "n_features": n_features, "trusted": trusted},
        data,
        limits,
    )
    size = int(header["artifact_bytes"])
    names = header.get("feature_names")
    return Inspection(
        format=str(header["format"]),
        artifact=payload[:size],
        algorithm=str(header["algorithm"]),
        n_features=int(header["n_features"]),
        feature_names=tuple(names) if names else None,
        onnx=payload[size:] if header["compiled"] else None,
        reason=header.get("reason"),
        max_delta=header.get("max_delta"),
    )


async def import_file(
    conn: asyncpg.Connection, request: ImportRequest, *, limits: SandboxLimits | None = None
) -> ModelRecord:
    """Validate a model file in a sandbox, then register it (and its compiled form) in one transaction."""
    checked = await check_file(request, limits=limits)
    async with conn.transaction():
        model = await registry.register(conn, checked.model)
        await save_compiled(conn, model.artifact_sha256, checked.found)
        if request.activate:
            model = await registry.set_status(conn, model.name, "active")
    return model


@dataclass(frozen=True, kw_only=True)
class CheckedFile:
    """A file that passed every check: the model to store and what the sandbox found."""

    model: NewModel
    found: Inspection


async def check_file(
    request: ImportRequest, *, limits: SandboxLimits | None = None, current: ModelRecord | None = None
) -> CheckedFile:
    """Every check of an import, in a sandbox; nothing is stored. A new version of `current` takes its
    name, target and features unless the metadata gives others."""
    meta = request.meta
    fmt = meta.format or detect_file_format(request.filename, request.data)
    name = current.name if current is not None else meta.name or default_name(request.filename)
    target = _required_target(meta.target or (current.target if current else None), name)
    given = meta.features if meta.features is not None or current is None else current.features
    if given is not None:
        _check_features(given)
    found = await inspect_in_sandbox(
        fmt,
        request.data,
        n_features=None if given is None else len(given),
        trusted=request.trusted,
        limits=limits or SandboxLimits(),
    )
    new = NewModel(
        name=name,
        algorithm=meta.algorithm or found.algorithm,
        format=found.format,
        artifact=found.artifact,
        features=_features(given, found),
        target=target,
        settings=request.settings or default_settings(meta),
        training_metrics=meta.metrics,
        source=_source(request, fmt, found),
    )
    return CheckedFile(model=new, found=found)


async def save_compiled(conn: asyncpg.Connection, sha256: str, found: Inspection) -> None:
    """Remember the compile result of the check, so serving it starts without converting again."""
    await conn.execute(query("save_compiled"), sha256, recipe(), found.onnx, found.max_delta, found.reason)


def _required_target(target: TargetSpec | None, name: str) -> TargetSpec:
    if target is None:
        raise ModelLoadError(
            f"model {name!r} has no target; give --target (e.g. 'up 10% in 5m') or a metadata file with one"
        )
    return target


def _check_features(features: tuple[str, ...]) -> None:
    try:
        validate_feature_names(features)
    except ValueError as exc:
        raise ModelLoadError(f"model refused: {exc}") from exc


def _features(given: tuple[str, ...] | None, found: Inspection) -> tuple[str, ...]:
    """The metadata's feature list, checked against the names the file carries (or those names)."""
    if given is None:
        if found.feature_names is None:
            raise ModelLoadError(
                f"the file takes {found.n_features} features but does not name them; give --features"
            )
        _check_features(found.feature_names)
        return found.feature_names
    if found.feature_names is not None and found.feature_names != given:
        raise ModelLoadError(
            f"the file was trained on features {list(found.feature_names)}, "
            f"the metadata names {list(given)}; give the list in the order it was trained with"
        )
    return given


def _source(request: ImportRequest, fmt: str, found: Inspection) -> dict[str, Any]:
    serving: dict[str, Any] = {"compiled": found.onnx is not None}
    if found.onnx is None:
        serving["reason"] = found.reason
    else:
        serving["max_delta"] = found.max_delta
    return {
        "file": PurePath(request.filename).name,
        "format": fmt,
        "sha256": hashlib.sha256(request.data).hexdigest(),
        "bytes": len(request.data),
        "trusted": request.trusted and fmt == "pickle",
        "stored_as": found.format,
        "serving": serving,
        **(request.source or {}),
    }


def default_name(filename: str) -> str:
    """A registry name from a file name: its stem with disallowed characters replaced."""
    return safe_name(PurePath(filename).name.split(".")[0])


def default_settings(meta: ModelMeta) -> ModelSettings:
    """Settings from what the metadata says (threshold, phases), coinfleet's defaults otherwise."""
    values: dict[str, Any] = {}
    if meta.alert_threshold is not None:
        values["alert_threshold"] = meta.alert_threshold
    if meta.phases:
        values["phases"] = meta.phases
    return ModelSettings(**values)


# --- bundles made by `coinfleet train` in this process ---


def validate_bundle(bundle: ModelBundle) -> None:
    """The file loads, its features are ones coinfleet computes, and a dry run gives probabilities."""
    try:
        validate_feature_names(bundle.features)
    except ValueError as exc:
        raise ModelLoadError(f"model {bundle.name!r} is refused: {exc}") from exc
    predictor = load_predictor(bundle.format, bundle.artifact)
    validate_predictor(predictor, len(bundle.features))


async def import_bundle(
    conn: asyncpg.Connection,
    bundle: ModelBundle,
    *,
    settings: ModelSettings | None = None,
    activate: bool = False,
) -> ModelRecord:
    """Validate in-process (a bundle this process trained), then register and optionally activate it."""
    validate_bundle(bundle)
    model = await registry.register(
        conn,
        NewModel(
            name=bundle.name,
            algorithm=bundle.algorithm,
            format=bundle.format,
            artifact=bundle.artifact,
            features=bundle.features,
            target=bundle.target,
            settings=settings or ModelSettings(alert_threshold=bundle.alert_threshold),
            training_metrics=bundle.metrics,
            source={"format": bundle.format, "trained_here": True},
        ),
    )
    if activate:
        model = await registry.set_status(conn, model.name, "active")
    return model
