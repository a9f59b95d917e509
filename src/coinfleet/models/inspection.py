"""Jobs that run inside the sandbox child (models/sandbox.py): check a model file, compile it to ONNX.

`inspect_file` loads a file, turns a trusted pickle into a format that loads without running code,
dry-runs it, and compiles and verifies its ONNX form. `compile_file` does the last step for a model
already registered. Both take and return plain JSON headers and bytes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from coinfleet.errors import ModelLoadError
from coinfleet.models.compile import Served, compile_model, verify
from coinfleet.models.convert import convert_estimator
from coinfleet.models.formats import Predictor, load_predictor, validate_predictor

#: an sklearn class → the algorithm name coinfleet's registry uses
_ALGORITHMS = {
    "RandomForestClassifier": "random_forest",
    "HistGradientBoostingClassifier": "hist_gradient_boosting",
    "XGBClassifier": "xgboost",
    "LGBMClassifier": "lightgbm",
}
_FORMAT_ALGORITHMS = {"xgboost-json": "xgboost", "lightgbm-text": "lightgbm", "onnx": "onnx"}


def inspect_file(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Load, convert a trusted pickle, dry-run and compile; the safe artifact, then the ONNX graph if any."""
    fmt, artifact, algorithm, predictor = str(header["format"]), payload, None, None
    if fmt == "pickle":
        if header.get("trusted") is not True:
            raise ModelLoadError("a pickle is loaded only when trusted (--trust)")
        fmt, artifact, algorithm, predictor = unpickle_to_safe(payload)
    predictor = predictor or load_predictor(fmt, artifact)
    names = feature_names(fmt, predictor)
    n_features = header.get("n_features") or predictor.n_features or (len(names) if names else None)
    if not n_features:
        raise ModelLoadError("the file does not say how many features it takes; give its feature list")
    served = compile_model(fmt, artifact, int(n_features), native=predictor)
    graph = served.artifact if served.compiled else b""
    return {
        "format": fmt,
        "algorithm": algorithm or algorithm_of(fmt, predictor),
        "n_features": int(n_features),
        "feature_names": names,
        "artifact_bytes": len(artifact),
        **_served_fields(served),
    }, artifact + graph


def compile_file(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    """A registered model's verified ONNX graph (real rows join the checks), or why the original serves."""
    size = int(header["artifact_bytes"])
    rows = None
    if header.get("rows_shape"):
        rows = np.frombuffer(payload, dtype=np.float64, offset=size).reshape(header["rows_shape"])
    served = compile_model(str(header["format"]), payload[:size], int(header["n_features"]), rows)
    return _served_fields(served), served.artifact if served.compiled else b""


def _served_fields(served: Served) -> dict[str, Any]:
    return {"compiled": served.compiled, "reason": served.reason, "max_delta": served.max_delta}


def unpickle_to_safe(data: bytes) -> tuple[str, bytes, str, Predictor | None]:
    """A trusted joblib/pickle classifier as (format, bytes, algorithm) of a format that runs no code,
    and those bytes loaded when checking them loaded them already."""
    import joblib

    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise ModelLoadError(f"cannot unpickle the file: {type(exc).__name__}: {exc}") from exc
    kind = type(model).__name__
    algorithm = _ALGORITHMS.get(kind, kind.lower())
    if hasattr(model, "get_booster") or (kind == "Booster" and hasattr(model, "save_raw")):
        _check_classes(model, kind)
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        return "xgboost-json", bytes(booster.save_raw("json")), "xgboost", None
    if hasattr(model, "booster_") or (kind == "Booster" and hasattr(model, "model_to_string")):
        _check_classes(model, kind)
        booster = getattr(model, "booster_", model)
        return "lightgbm-text", str(booster.model_to_string()).encode(), "lightgbm", None
    if not hasattr(model, "predict_proba"):
        raise ModelLoadError(f"the pickle holds a {kind}, not a classifier with predict_proba")
    _check_classes(model, kind)
    fmt, artifact, loaded = _sklearn_artifact(model)
    return fmt, artifact, algorithm, loaded


def _check_classes(model: Any, kind: str) -> None:
    classes = getattr(model, "classes_", None)
    if classes is not None and sorted(np.asarray(classes).tolist()) != [0, 1]:
        raise ModelLoadError(f"the pickled {kind} must be a 0/1 classifier; its classes: {list(classes)}")


def _sklearn_artifact(model: Any) -> tuple[str, bytes, Predictor | None]:
    """skops when the model loads back under coinfleet's allow-list (and so loaded), else its verified
    ONNX graph."""
    import skops.io

    artifact = skops.io.dumps(model)
    try:
        return "skops", artifact, load_predictor("skops", artifact)
    except ModelLoadError:
        pass
    n_features = int(getattr(model, "n_features_in_", 0))
    if not n_features:
        raise ModelLoadError(f"the pickled {type(model).__name__} does not say how many features it takes")
    graph = convert_estimator(model, n_features)
    native = _EstimatorPredictor(model)
    validate_predictor(native, n_features)
    verify(graph, native, np.random.default_rng(0).normal(size=(256, n_features)))
    return "onnx", graph, None


class _EstimatorPredictor:
    def __init__(self, estimator: Any) -> None:
        self._estimator = estimator
        self.n_features: int | None = int(estimator.n_features_in_)
        self._positive = list(estimator.classes_).index(1)

    def predict_proba(self, x: Any) -> Any:
        return np.asarray(self._estimator.predict_proba(x), dtype=np.float64)[:, self._positive]


def feature_names(fmt: str, predictor: Predictor) -> list[str] | None:
    """The feature names the file carries, if its library stored real ones."""
    inner = getattr(predictor, "_booster", None) or getattr(predictor, "_estimator", None)
    names: Any = None
    if fmt == "xgboost-json" and inner is not None:
        names = inner.feature_names
    elif fmt == "lightgbm-text" and inner is not None:
        names = inner.feature_name()
    elif inner is not None:
        names = getattr(inner, "feature_names_in_", None)
    listed = [str(n) for n in names] if names is not None else []
    placeholders = ([f"Column_{i}" for i in range(len(listed))], [f"f{i}" for i in range(len(listed))])
    if not listed or listed in placeholders:
        return None  # the library's placeholders (Column_0, f0), not the names trained with
    return listed


def algorithm_of(fmt: str, predictor: Predictor) -> str:
    """The registry's algorithm name for a loaded file."""
    estimator = getattr(predictor, "_estimator", None)
    if estimator is not None:
        kind = type(estimator).__name__
        return _ALGORITHMS.get(kind, kind.lower())
    return _FORMAT_ALGORITHMS.get(fmt, fmt)
