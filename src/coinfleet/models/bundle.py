"""A model file with its metadata beside it: what `coinfleet train` writes and `models import` reads.

`NAME.model.json` holds the metadata and names the artifact file next to it (`NAME.xgb.json`,
`NAME.lgbm.txt`, `NAME.skops` or `NAME.onnx`), which stays a plain file of its library's format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinfleet.constants import DEFAULT_ALERT_THRESHOLD
from coinfleet.errors import ModelLoadError
from coinfleet.models.files import DEFAULT_MAX_MB, artifact_beside, read_limited
from coinfleet.models.spec import ModelSpec
from coinfleet.targets import TargetSpec

ARTIFACT_SUFFIX = {
    "xgboost-json": ".xgb.json",
    "lightgbm-text": ".lgbm.txt",
    "skops": ".skops",
    "onnx": ".onnx",
}
META_SUFFIX = ".model.json"


@dataclass(frozen=True, kw_only=True)
class ModelBundle(ModelSpec):
    """A model ready to register."""

    name: str
    metrics: dict[str, Any]
    alert_threshold: float = DEFAULT_ALERT_THRESHOLD


def write_bundle(folder: Path, bundle: ModelBundle) -> Path:
    """Write the artifact and its metadata; return the metadata file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    artifact_name = bundle.name + ARTIFACT_SUFFIX[bundle.format]
    (folder / artifact_name).write_bytes(bundle.artifact)
    meta = {
        "name": bundle.name,
        "algorithm": bundle.algorithm,
        "format": bundle.format,
        "artifact": artifact_name,
        "features": list(bundle.features),
        "target": bundle.target.to_dict(),
        "metrics": bundle.metrics,
        "alert_threshold": bundle.alert_threshold,
    }
    path = folder / (bundle.name + META_SUFFIX)
    path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return path


def read_bundle(path: Path, *, max_bytes: int = DEFAULT_MAX_MB * 2**20) -> ModelBundle:
    """Read a bundle's metadata and its artifact (beside it, at most `max_bytes`); ModelLoadError says
    what is missing or wrong."""
    try:
        meta = json.loads(read_limited(path, max_bytes))
        artifact = read_limited(artifact_beside(path, str(meta["artifact"])), max_bytes)
        return bundle_from_meta(meta, artifact)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not a readable coinfleet model bundle: {exc}") from exc


def bundle_from_meta(meta: dict[str, Any], artifact: bytes, *, name: str | None = None) -> ModelBundle:
    """A bundle from the metadata of a NAME.model.json and its artifact, under `name` if given; KeyError,
    TypeError or ValueError when the metadata is malformed."""
    return ModelBundle(
        name=name or meta["name"],
        algorithm=meta["algorithm"],
        format=meta["format"],
        artifact=artifact,
        features=tuple(meta["features"]),
        target=TargetSpec.from_dict(meta["target"]),
        metrics=meta.get("metrics", {}),
        alert_threshold=float(meta.get("alert_threshold", DEFAULT_ALERT_THRESHOLD)),
    )
