"""The one place that turns a model file into a predictor; a format's library is imported only when used.

XGBoost's and LightGBM's native parsers trust the declared sizes and links in a file: a cut or corrupted
file crashed the whole process in tests. So their files are checked first (`models.file_checks`: UBJSON
lengths, tree arrays, child links, feature indices) and refused with ModelLoadError. A file crafted on
purpose may still find another way in: files from outside are loaded in a throwaway process first
(`models.sandbox`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from coinfleet.errors import ModelLoadError
from coinfleet.models.file_checks import check_xgboost_model, lightgbm_trees, xgboost_document

FloatArray = npt.NDArray[np.float64]

#: file formats coinfleet can load
FORMATS: tuple[str, ...] = ("xgboost-json", "lightgbm-text", "skops", "onnx")
#: file suffix → format
SUFFIXES: dict[str, str] = {
    ".json": "xgboost-json",
    ".ubj": "xgboost-json",
    ".txt": "lightgbm-text",
    ".skops": "skops",
    ".onnx": "onnx",
}
#: types a skops file may contain beyond skops' own defaults; anything else is refused.
#: Tree and TreePredictor hold raw arrays that can crash a process if crafted: foreign files load in a runner.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.dtype",
)
#: rows of the validation dry run
_SAMPLE_ROWS = 8
#: how far from 1 the two classes' probabilities may sum (float32 graphs round)
_SUM_TOLERANCE = 1e-3


class Predictor(Protocol):
    """A loaded binary classifier."""

    @property
    def n_features(self) -> int | None:
        """How many feature columns it expects (None when the file does not say)."""
        ...

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """P(class 1) per row as float64 [N]; NaN in `x` means missing."""
        ...


class _XGBoostPredictor:
    def __init__(self, booster: Any) -> None:
        self._booster = booster
        self.n_features: int | None = int(booster.num_features())

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return _as_probabilities(self._booster.inplace_predict(_rows(x)), len(x))


class _LightGBMPredictor:
    def __init__(self, booster: Any) -> None:
        self._booster = booster
        self.n_features: int | None = int(booster.num_feature())

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return _as_probabilities(self._booster.predict(_rows(x), num_threads=1), len(x))


class _SklearnPredictor:
    def __init__(self, estimator: Any, positive: int) -> None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        self._estimator = estimator
        self._positive = positive
        self._threads = ThreadpoolController()
        n = getattr(estimator, "n_features_in_", None)
        self.n_features: int | None = None if n is None else int(n)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return np.ascontiguousarray(self.class_probabilities(x)[:, self._positive])

    def class_probabilities(self, x: FloatArray) -> FloatArray:
        """Both classes' probabilities [N, 2], as the estimator gives them."""
        # sklearn's OpenMP threads spin against other processes: 1-row calls took 500 ms instead of 0.5 ms
        with self._threads.limit(limits=1):
            proba = self._estimator.predict_proba(_rows(x))
        return _two_columns(proba, len(x))


class _OnnxPredictor:
    def __init__(self, session: Any, output: str, n_features: int | None, dtype: type[np.generic]) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = output
        self._dtype = dtype
        self.n_features = n_features

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return np.ascontiguousarray(self.class_probabilities(x)[:, 1])

    def class_probabilities(self, x: FloatArray) -> FloatArray:
        """Both classes' probabilities [N, 2], as the graph gives them."""
        (proba,) = self._session.run([self._output], {self._input: _rows(x).astype(self._dtype)})
        return _two_columns(proba, len(x))


def detect_format(filename: str) -> str:
    """The format of a model file from its suffix (.json/.ubj, .txt, .skops, .onnx)."""
    suffix = PurePath(filename).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(SUFFIXES)
        raise ModelLoadError(f"cannot tell the format of {filename!r}; use one of the suffixes {known}")
    return SUFFIXES[suffix]


def load_predictor(fmt: str, data: bytes) -> Predictor:
    """Load model bytes of format `fmt`; any problem raises ModelLoadError saying what is wrong."""
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise ModelLoadError(f"unknown model format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not data:
        raise ModelLoadError(f"the {fmt} model file is empty")
    try:
        return loader(data)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"not a valid {fmt} model: {_first_line(exc)}") from exc


def validate_predictor(pred: Predictor, n_features: int) -> None:
    """Dry-run the predictor on sample rows (NaN included); raise ModelLoadError unless all is sound."""
    if n_features < 1:
        raise ModelLoadError("a model needs at least one feature")
    if pred.n_features is not None and pred.n_features != n_features:
        raise ModelLoadError(
            f"model expects {pred.n_features} features but its feature list names {n_features}; "
            "give the feature list it was trained with"
        )
    try:
        proba = pred.predict_proba(_sample_rows(n_features))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"model failed its dry run on sample rows: {_first_line(exc)}") from exc
    if proba.shape != (_SAMPLE_ROWS,) or not np.all(np.isfinite(proba)):
        raise ModelLoadError(f"model dry run gave non-finite or misshaped probabilities: {proba!r}")
    if np.any(proba < 0) or np.any(proba > 1):
        raise ModelLoadError(f"model dry run gave probabilities outside [0, 1]: {proba!r}")
    both = getattr(pred, "class_probabilities", None)
    if both is not None:
        _check_both_classes(both(_sample_rows(n_features)))


def _check_both_classes(proba: FloatArray) -> None:
    """Both classes' columns (a graph or estimator gives them apart) are finite, in [0, 1], summing to 1."""
    if not np.all(np.isfinite(proba)) or np.any(proba < 0) or np.any(proba > 1):
        raise ModelLoadError(
            f"model dry run gave class probabilities that are non-finite or outside [0, 1]: {proba!r}"
        )
    if np.max(np.abs(proba.sum(axis=1) - 1.0)) > _SUM_TOLERANCE:
        raise ModelLoadError(
            f"model dry run gave class probabilities that do not sum to 1 (scores?): {proba!r}"
        )


def _load_xgboost(data: bytes) -> Predictor:
    import xgboost

    check_xgboost_model(xgboost_document(data))
    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    booster.set_param({"nthread": 1})
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective != "binary:logistic":
        raise ModelLoadError(
            f"XGBoost objective is {objective!r}; coinfleet needs a binary:logistic classifier"
        )
    return _XGBoostPredictor(booster)


def _load_lightgbm(data: bytes) -> Predictor:
    import lightgbm

    text = lightgbm_trees(data).decode("utf-8")
    objective = next((line[10:] for line in text.splitlines() if line.startswith("objective=")), "")
    if objective.split(" ")[0] != "binary":
        raise ModelLoadError(f"LightGBM objective is {objective!r}; coinfleet needs a binary classifier")
    return _LightGBMPredictor(lightgbm.Booster(model_str=text))


def _load_skops(data: bytes) -> Predictor:
    import skops.io

    untrusted = [name for name in skops.io.get_untrusted_types(data=data) if name not in TRUSTED_TYPES]
    if untrusted:
        raise ModelLoadError(f"skops file contains types coinfleet does not trust: {', '.join(untrusted)}")
    estimator = skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    classes = list(getattr(estimator, "classes_", []))
    if not hasattr(estimator, "predict_proba") or len(classes) != 2 or 1 not in classes or 0 not in classes:
        raise ModelLoadError(
            f"skops model must be a 0/1 classifier with predict_proba; its classes: {classes}"
        )
    if getattr(estimator, "n_jobs", None) not in (None, 1):
        estimator.n_jobs = 1  # a runner owns one CPU slot
    return _SklearnPredictor(estimator, classes.index(1))


def _load_onnx(data: bytes) -> Predictor:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in ("tensor(float)", "tensor(double)"):
        raise ModelLoadError("ONNX model must have exactly one float tensor input [N, n_features]")
    width = inputs[0].shape[-1] if len(inputs[0].shape) == 2 else None
    dtype = np.float32 if inputs[0].type == "tensor(float)" else np.float64
    return _OnnxPredictor(session, _onnx_output(session), width if isinstance(width, int) else None, dtype)


def _onnx_output(session: Any) -> str:
    """The name of the [N, 2] probability output."""
    for output in session.get_outputs():
        if output.type.startswith("tensor(") and len(output.shape) == 2 and output.shape[1] == 2:
            return str(output.name)
    found = ", ".join(f"{o.name}: {o.type} {o.shape}" for o in session.get_outputs())
    raise ModelLoadError(
        f"ONNX model has no [N, 2] probability output (found {found}); export it with zipmap disabled"
    )


_LOADERS: dict[str, Callable[[bytes], Predictor]] = {
    "xgboost-json": _load_xgboost,
    "lightgbm-text": _load_lightgbm,
    "skops": _load_skops,
    "onnx": _load_onnx,
}


def _rows(x: FloatArray) -> FloatArray:
    rows = np.asarray(x, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"features must be a 2-D array [N, n_features], got shape {rows.shape}")
    return rows


def _as_probabilities(values: Any, n: int) -> FloatArray:
    proba = np.asarray(values, dtype=np.float64)
    if proba.shape != (n,):
        raise ModelLoadError(f"model returned shape {proba.shape}; expected one probability per row ({n},)")
    return proba


def _two_columns(values: Any, n: int) -> FloatArray:
    proba = np.asarray(values, dtype=np.float64)
    if proba.shape != (n, 2):
        raise ModelLoadError(f"model returned shape {proba.shape}; expected class probabilities ({n}, 2)")
    return proba


def _sample_rows(n_features: int) -> FloatArray:
    rows = np.random.default_rng(0).normal(size=(_SAMPLE_ROWS, n_features))
    rows[0] = 0.0
    rows[1] = np.nan
    rows[2, ::2] = np.nan
    rows[3] *= 1e6
    return rows


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
