"""The algorithms `coinfleet train` knows: their default parameters, how each is fitted and exported."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Algorithm = Literal["xgboost", "lightgbm", "hist_gradient_boosting", "random_forest"]

#: algorithms `train_model` knows
ALGORITHMS: tuple[str, ...] = ("xgboost", "lightgbm", "hist_gradient_boosting", "random_forest")


def fit_model(
    algorithm: Algorithm,
    x: FloatArray,
    y: IntArray,
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit `algorithm` with coinfleet's defaults overridden by `params`; the model and the params used."""
    spec = _SPECS[algorithm]
    chosen = {**spec.defaults(seed, _neg_pos_ratio(y)), **(params or {})}
    model = spec.build(chosen)
    with one_thread():
        model.fit(x, y)
    return model, chosen


def export_model(algorithm: Algorithm, model: Any) -> tuple[str, bytes]:
    """The fitted model's artifact: its format and bytes, ready for `formats.load_predictor`."""
    spec = _SPECS[algorithm]
    return spec.format, spec.export(model)


def one_thread() -> Any:
    """Limit native thread pools (OpenMP, BLAS) to one thread for the block."""
    # multi-threaded OpenMP spins against other busy processes on small machines: HistGradientBoosting took
    # 46 s instead of 0.4 s and XGBoost/LightGBM with 2 threads 100x longer than with 1 on a shared 2-core box
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1)


def _neg_pos_ratio(y: IntArray) -> float:
    positives = int(y.sum())
    return (len(y) - positives) / positives if positives else 1.0


@dataclass(frozen=True, kw_only=True)
class _AlgorithmSpec:
    format: str
    defaults: Callable[[int, float], dict[str, Any]]  #: (seed, negatives/positives) → constructor params
    build: Callable[[dict[str, Any]], Any]
    export: Callable[[Any], bytes]


def _xgboost_defaults(seed: int, neg_pos: float) -> dict[str, Any]:
    return {
        "n_estimators": 200,
        "max_depth": 4,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "tree_method": "hist",
        "scale_pos_weight": neg_pos,
        "n_jobs": 1,
        "random_state": seed,
    }


def _build_xgboost(params: dict[str, Any]) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(**params)


def _export_xgboost(model: Any) -> bytes:
    return bytes(model.get_booster().save_raw("json"))


def _lightgbm_defaults(seed: int, neg_pos: float) -> dict[str, Any]:
    return {
        "n_estimators": 200,
        "num_leaves": 15,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "scale_pos_weight": neg_pos,
        "n_jobs": 1,
        "random_state": seed,
        "verbose": -1,
    }


def _build_lightgbm(params: dict[str, Any]) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(**params)


def _export_lightgbm(model: Any) -> bytes:
    return str(model.booster_.model_to_string()).encode("utf-8")


def _hgb_defaults(seed: int, neg_pos: float) -> dict[str, Any]:
    return {
        "max_iter": 200,
        "max_leaf_nodes": 15,
        "learning_rate": 0.05,
        "class_weight": "balanced",
        "early_stopping": False,
        "random_state": seed,
    }


def _build_hgb(params: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**params)


def _rf_defaults(seed: int, neg_pos: float) -> dict[str, Any]:
    return {
        "n_estimators": 200,
        "max_depth": 8,
        "min_samples_leaf": 5,
        "class_weight": "balanced_subsample",
        "n_jobs": 1,
        "random_state": seed,
    }


def _build_rf(params: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params)


def _export_skops(model: Any) -> bytes:
    import skops.io

    return bytes(skops.io.dumps(model))


_SPECS: dict[str, _AlgorithmSpec] = {
    "xgboost": _AlgorithmSpec(
        format="xgboost-json", defaults=_xgboost_defaults, build=_build_xgboost, export=_export_xgboost
    ),
    "lightgbm": _AlgorithmSpec(
        format="lightgbm-text", defaults=_lightgbm_defaults, build=_build_lightgbm, export=_export_lightgbm
    ),
    "hist_gradient_boosting": _AlgorithmSpec(
        format="skops", defaults=_hgb_defaults, build=_build_hgb, export=_export_skops
    ),
    "random_forest": _AlgorithmSpec(
        format="skops", defaults=_rf_defaults, build=_build_rf, export=_export_skops
    ),
}
