"""A model's metadata from wherever it comes: a sidecar JSON/TOML, command-line flags, the predecessor's rows.

Both coinfleet's own field names (`features`, `target`, `metrics`, `alert_threshold`, as a bundle's
`NAME.model.json` has them) and the predecessor's (`future_minutes`, `price_change_percent`,
`target_direction`, `target_variable`, `target_operator`, `target_value`, `model_type`,
`training_accuracy`, …) are read as they are. Pure: values in, values out.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coinfleet.errors import ModelLoadError
from coinfleet.models.files import read_limited
from coinfleet.targets import OPERATORS, TargetSpec

#: the predecessor's training metrics, copied as they are
PREDECESSOR_METRICS: tuple[str, ...] = (
    "training_accuracy",
    "training_f1",
    "training_precision",
    "training_recall",
    "roc_auc",
    "mcc",
    "confusion_matrix",
    "simulated_profit_pct",
    "accuracy",
    "f1",
    "f1_score",
    "precision",
    "recall",
)
#: a metadata file no larger than this (a few fields; a device or a huge file is refused, never read whole)
SIDECAR_MAX_BYTES = 2**20
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
#: seconds per unit of a horizon written as text ("300s", "5m", "1h")
_UNITS = {"s": 1, "m": 60, "h": 3600}
_HORIZON = r"(?:(?:in|at|within)\s+)?(?P<horizon>\d+(?:\.\d+)?)\s*(?P<unit>[smh])?"
_CHANGE_TEXT = re.compile(rf"(?P<direction>up|down)\s+(?P<percent>\d+(?:\.\d+)?)\s*%\s+{_HORIZON}", re.I)
_CLASSIC_TEXT = re.compile(
    rf"(?P<variable>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<operator>>=|<=|>|<|=)\s*(?P<value>[-+0-9.eE]+)\s+{_HORIZON}"
)


@dataclass(frozen=True, kw_only=True)
class ModelMeta:
    """What coinfleet needs to know about a model file besides the file; every field may be unknown."""

    name: str | None = None
    algorithm: str | None = None
    format: str | None = None
    features: tuple[str, ...] | None = None
    target: TargetSpec | None = None
    phases: list[int] | None = None
    alert_threshold: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None  #: a bundle's artifact file name, beside the metadata file

    def merged(self, override: ModelMeta) -> ModelMeta:
        """This metadata with every field `override` knows taken from it (flags win over a sidecar)."""
        known = {k: v for k, v in vars(override).items() if v is not None and k != "metrics"}
        return replace(self, **known, metrics={**self.metrics, **override.metrics})


def read_sidecar(path: Path) -> ModelMeta:
    """Metadata from a JSON or TOML file (by suffix) of at most SIDECAR_MAX_BYTES; ModelLoadError says what
    is wrong with it."""
    raw = read_limited(path, SIDECAR_MAX_BYTES, hint="model metadata holds a few fields")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelLoadError(f"cannot read model metadata {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"model metadata {path} must be a JSON/TOML object of fields")
    return parse_metadata(data)


def parse_metadata(data: Mapping[str, Any]) -> ModelMeta:
    """Metadata from a mapping with coinfleet's or the predecessor's field names (others are ignored)."""
    try:
        return ModelMeta(
            name=_text(data.get("name")) or _safe(_text(data.get("custom_name") or data.get("model_name"))),
            algorithm=_text(data.get("algorithm") or data.get("model_type")),
            format=_text(data.get("format")),
            features=parse_features(data["features"]) if data.get("features") is not None else None,
            target=_target(data),
            phases=parse_phases(data["phases"]) if data.get("phases") is not None else None,
            alert_threshold=_number(data.get("alert_threshold")),
            metrics=_metrics(data),
            artifact=_text(data.get("artifact")),
        )
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"model metadata is invalid: {exc}") from exc


def parse_features(value: Any) -> tuple[str, ...]:
    """A feature list from a JSON list, or text separated by commas."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"features must be a list of names, got {value!r}")
    names = tuple(v.strip() for v in value if v.strip())
    if not names:
        raise ValueError("features must name at least one feature")
    return names


def parse_phases(value: Any) -> list[int] | None:
    """Phases from a JSON list or text like '1,2'; an empty list means every phase."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split(",")
    if not isinstance(value, list | tuple):
        raise ValueError(f"phases must be a list of phase ids, got {value!r}")
    phases = [int(v) for v in value if str(v).strip()]
    return phases or None


def parse_target_text(text: str) -> TargetSpec:
    """A target written as 'up 10% in 5m' or 'price_close > 0.0001 at 600s' (what `describe` prints)."""
    change = _CHANGE_TEXT.fullmatch(text.strip())
    if change:
        return TargetSpec(
            kind="change",
            direction="up" if change["direction"].lower() == "up" else "down",
            change_percent=float(change["percent"]),
            horizon_seconds=_seconds(change["horizon"], change["unit"]),
        )
    classic = _CLASSIC_TEXT.fullmatch(text.strip())
    if classic and classic["operator"] in OPERATORS:
        return TargetSpec.from_dict(
            {
                "kind": "classic",
                "variable": classic["variable"],
                "operator": classic["operator"],
                "value": float(classic["value"]),
                "horizon_seconds": _seconds(classic["horizon"], classic["unit"]),
            }
        )
    raise ValueError(
        f"cannot read target {text!r}; write e.g. 'up 10% in 5m' or 'price_close > 0.0001 at 600s'"
    )


def _seconds(amount: str, unit: str | None) -> int:
    return round(float(amount) * _UNITS[(unit or "s").lower()])


def _target(data: Mapping[str, Any]) -> TargetSpec | None:
    target = data.get("target")
    if isinstance(target, dict):
        return TargetSpec.from_dict(target)
    if isinstance(target, str):
        return parse_target_text(target)
    return _predecessor_target(data)


def _predecessor_target(data: Mapping[str, Any]) -> TargetSpec | None:
    """The predecessor's time-based target (minutes, %, direction) or its classic one (operator, value)."""
    minutes = _number(data.get("future_minutes"))
    horizon = round(minutes * 60) if minutes else None
    percent, direction = _number(data.get("price_change_percent")), data.get("target_direction")
    if percent is not None and direction is not None:
        if horizon is None:
            raise ValueError("a time-based target needs future_minutes > 0")
        return TargetSpec(
            kind="change", direction=direction, change_percent=abs(percent), horizon_seconds=horizon
        )
    if data.get("target_operator") is not None and data.get("target_value") is not None:
        if horizon is None:
            raise ValueError("coinfleet needs a horizon for a classic target: give future_minutes")
        return TargetSpec.from_dict(
            {
                "kind": "classic",
                "variable": data.get("target_variable"),
                "operator": data["target_operator"],
                "value": float(data["target_value"]),
                "horizon_seconds": horizon,
            }
        )
    return None


def _metrics(data: Mapping[str, Any]) -> dict[str, Any]:
    metrics = dict(data["metrics"]) if isinstance(data.get("metrics"), dict) else {}
    metrics.update({k: _plain(data[k]) for k in PREDECESSOR_METRICS if data.get(k) is not None})
    if isinstance(data.get("params"), dict):
        metrics.setdefault("params", data["params"])
    return metrics


def _plain(value: Any) -> Any:
    """JSON-ready: Decimal and other numbers as float, structures as they are."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value if isinstance(value, int | float | bool | list | dict) or value is None else float(value)


def safe_name(text: str) -> str:
    """A registry name from any text (a file name, the predecessor's custom name): allowed characters only."""
    return (_NAME_CHARS.sub("-", text).strip("-._") or "model")[:64]


def _safe(text: str | None) -> str | None:
    return None if text is None else safe_name(text)


def _text(value: Any) -> str | None:
    return None if value is None or not str(value).strip() else str(value).strip()


def _number(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def flag_metadata(
    *,
    name: str | None = None,
    features: str | None = None,
    target: str | None = None,
    phases: str | None = None,
    threshold: float | None = None,
    fmt: str | None = None,
    algorithm: str | None = None,
) -> ModelMeta:
    """Metadata from command-line flags (text as typed); ModelLoadError names the flag that is wrong."""
    try:
        return ModelMeta(
            name=name,
            features=parse_features(features) if features else None,
            target=parse_target_text(target) if target else None,
            phases=parse_phases(phases) if phases else None,
            alert_threshold=threshold,
            format=fmt,
            algorithm=algorithm,
        )
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"invalid option: {exc}") from exc
