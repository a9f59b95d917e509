"""Train a model on recorded coin_metrics rows: real-future labels, time-ordered split, exported artifact.

Features come from the same catalogue and windows as serving; labels from the same outcome rules as
evaluation. The split is by time: the test set holds the latest ~30 % of prediction times, and a train
row is kept only if every row its label read lies before the first test time (a gap of at least one
horizon). A feature missing from every train row (an optional column the data lacks) is left out of the
model and listed in `metrics["dropped_features"]`. Metrics are computed from the exported artifact as
loaded by `formats.load_predictor`, i.e. from exactly what will serve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from coinfleet.constants import DEFAULT_ALERT_THRESHOLD
from coinfleet.errors import CoinfleetError
from coinfleet.evaluation.calibration import calibration
from coinfleet.evaluation.drift import FeatureReference, references_of
from coinfleet.evaluation.outcomes import (
    DEFAULT_GRACE_SECONDS,
    FeedTimes,
    LabelMode,
    Outcome,
    PricePath,
    evaluate_outcome,
    label_for_training,
)
from coinfleet.features.spec import DEFAULT_FEATURES, compute_matrix, validate_feature_names
from coinfleet.features.window import WINDOW_ROWS, windows_from_history
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.formats import load_predictor, validate_predictor
from coinfleet.models.spec import ModelSpec
from coinfleet.targets import TargetSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Algorithm = Literal["xgboost", "lightgbm", "hist_gradient_boosting", "random_forest"]

#: algorithms `train_model` knows
ALGORITHMS: tuple[str, ...] = ("xgboost", "lightgbm", "hist_gradient_boosting", "random_forest")
#: share of the prediction times that go to the train side of the split
TRAIN_FRACTION = 0.7
#: fewer labelled rows than this on either side of the split cannot give a meaningful model or metric
MIN_TRAIN_ROWS = 50
MIN_TEST_ROWS = 20
#: largest |Δp| allowed between the in-memory model and its reloaded artifact
MAX_EXPORT_DRIFT = 1e-6
#: file suffix per artifact format (the suffix `formats.detect_format` maps back)


class TrainingError(CoinfleetError):
    """The data cannot train a model (too few rows, one class) or the export does not reproduce it."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Dataset:
    """Labelled feature rows of many coins, one per prediction time."""

    x: FloatArray  #: features [n, len(features)]
    y: IntArray  #: labels 0/1
    t0: FloatArray  #: prediction time, epoch seconds
    label_end: FloatArray  #: time of the last row the label read (horizon end + grace: the feed check)
    change_pct: FloatArray  #: change at horizon end, % (for the simulated profit)


@dataclass(frozen=True, kw_only=True, eq=False)
class TimeSplit:
    """Row masks of a time-ordered split: every train label ends before the first test time."""

    train: BoolArray
    test: BoolArray
    split_at: float  #: epoch seconds; test rows have t0 ≥ split_at, train labels end before it


@dataclass(frozen=True, kw_only=True)
class TrainedModel(ModelSpec):
    """A trained model's artifact and everything needed to import and judge it."""

    label_mode: LabelMode
    metrics: dict[str, Any]  #: on the test split
    trained_rows: int
    params: dict[str, Any]
    seed: int
    #: per feature, its train distribution (evaluation.drift), for live drift against it
    drift_reference: dict[str, FeatureReference] = field(default_factory=dict, repr=False)

    def to_bundle(self, name: str, *, alert_threshold: float = DEFAULT_ALERT_THRESHOLD) -> ModelBundle:
        """The model as a bundle, ready to write to disk or import."""
        return ModelBundle(
            **self.spec_fields(),
            name=name,
            metrics={
                **self.metrics,
                "label_mode": self.label_mode,
                "trained_rows": self.trained_rows,
                "params": self.params,
                "seed": self.seed,
                "drift_reference": {name: ref.to_dict() for name, ref in self.drift_reference.items()},
            },
            alert_threshold=alert_threshold,
        )


def train_model(
    rows: Iterable[MetricRow],
    *,
    algorithm: Algorithm,
    target: TargetSpec,
    features: Sequence[str] = DEFAULT_FEATURES,
    label_mode: LabelMode = "within",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> TrainedModel:
    """Train `algorithm` on rows of any coins in any order; raise TrainingError when the data cannot."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    validate_feature_names(features)
    data = build_dataset(
        rows, target=target, features=features, label_mode=label_mode, grace_seconds=grace_seconds
    )
    split = time_split(data.t0, data.label_end, train_fraction=TRAIN_FRACTION)
    _check_trainable(data, split)
    used = _present_columns(data.x[split.train])
    x_train, x_test = data.x[split.train][:, used], data.x[split.test][:, used]
    model, chosen = fit_model(algorithm, x_train, data.y[split.train], seed=seed, params=params)
    fmt, artifact = export_model(algorithm, model)
    proba = _reloaded_probabilities(fmt, artifact, model, x_test)
    metrics = evaluation_metrics(data.y[split.test], proba, _signed_change(data, split.test, target))
    dropped = [name for j, name in enumerate(features) if j not in used]
    metrics.update(n_train=int(split.train.sum()), split_at=_iso(split.split_at), dropped_features=dropped)
    return TrainedModel(
        algorithm=algorithm,
        format=fmt,
        artifact=artifact,
        features=tuple(features[j] for j in used),
        target=target,
        label_mode=label_mode,
        metrics=metrics,
        trained_rows=int(split.train.sum()),
        params=chosen,
        seed=seed,
        drift_reference=references_of(x_train, [features[j] for j in used]),
    )


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
    with _one_thread():
        model.fit(x, y)
    return model, chosen


def export_model(algorithm: Algorithm, model: Any) -> tuple[str, bytes]:
    """The fitted model's artifact: its format and bytes, ready for `formats.load_predictor`."""
    spec = _SPECS[algorithm]
    return spec.format, spec.export(model)


def build_dataset(
    rows: Iterable[MetricRow],
    *,
    target: TargetSpec,
    features: Sequence[str],
    label_mode: LabelMode,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> Dataset:
    """Features at every row of every coin and its label; rows without a label are dropped. Labels are
    the outcomes evaluation would store, with the recorded rows of every coin as the feed."""
    coins = _by_coin(rows)
    if not coins:
        raise TrainingError("no rows to train on")
    feed = FeedTimes.of([row.timestamp.timestamp() for coin in coins for row in coin])
    parts = [_coin_dataset(coin, target, features, label_mode, feed, grace_seconds) for coin in coins]
    return Dataset(
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        t0=np.concatenate([p.t0 for p in parts]),
        label_end=np.concatenate([p.label_end for p in parts]),
        change_pct=np.concatenate([p.change_pct for p in parts]),
    )


def time_split(t0: FloatArray, label_end: FloatArray, *, train_fraction: float = TRAIN_FRACTION) -> TimeSplit:
    """Test on the latest prediction times; train on rows whose label ended before the first test time."""
    if len(t0) == 0:
        return TimeSplit(train=np.zeros(0, dtype=bool), test=np.zeros(0, dtype=bool), split_at=0.0)
    times = np.unique(t0)
    split_at = float(times[min(int(len(times) * train_fraction), len(times) - 1)])
    return TimeSplit(train=label_end < split_at, test=t0 >= split_at, split_at=split_at)


def evaluation_metrics(y: IntArray, proba: FloatArray, signed_change: FloatArray | None) -> dict[str, Any]:
    """Classification metrics at threshold 0.5 and calibration (JSON-ready); roc_auc is None when y has
    one class."""
    from sklearn import metrics as skm

    predicted = (proba >= 0.5).astype(np.int64)
    matrix = skm.confusion_matrix(y, predicted, labels=[0, 1])
    both = len(np.unique(y)) == 2
    profit = None
    if signed_change is not None and predicted.any():
        profit = float(np.mean(signed_change[predicted == 1]))
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, proba)) if both else None,
        "mcc": float(skm.matthews_corrcoef(y, predicted)) if both else None,
        "confusion_matrix": matrix.astype(int).tolist(),  #: [[tn, fp], [fn, tp]]
        "positive_rate": float(np.mean(y)) if len(y) else 0.0,
        "predicted_positive_rate": float(np.mean(predicted)) if len(y) else 0.0,
        "n_test": len(y),
        #: mean % change at horizon end of the rows predicted positive (sign flipped for down targets)
        "simulated_profit_pct": profit,
        #: Brier score and reliability table, as `coinfleet stats` reports them live
        "calibration": calibration(proba, y).as_dict(),
    }


# --- dataset ---


def _by_coin(rows: Iterable[MetricRow]) -> list[list[MetricRow]]:
    """Rows grouped per coin, sorted by time; a repeated (mint, timestamp) keeps its last row."""
    coins: dict[str, dict[datetime, MetricRow]] = {}
    for row in rows:
        coins.setdefault(row.mint, {})[row.timestamp] = row
    return [[bars[ts] for ts in sorted(bars)] for bars in coins.values()]


def _coin_dataset(
    rows: Sequence[MetricRow],
    target: TargetSpec,
    features: Sequence[str],
    label_mode: LabelMode,
    feed: FeedTimes,
    grace_seconds: float,
) -> Dataset:
    windows = list(windows_from_history(rows, WINDOW_ROWS))
    outcomes = outcomes_at_every_row(rows, target=target, feed=feed, grace_seconds=grace_seconds)
    labelled = [
        (window, outcome, label)
        for window, outcome in zip(windows, outcomes, strict=True)
        if (label := label_for_training(outcome, label_mode)) is not None
    ]
    settled = target.horizon_seconds + grace_seconds
    return Dataset(
        x=compute_matrix([window for window, _, _ in labelled], features),
        y=np.array([label for _, _, label in labelled], dtype=np.int64),
        t0=np.array([window.t[-1] for window, _, _ in labelled], dtype=np.float64),
        label_end=np.array([window.t[-1] + settled for window, _, _ in labelled], dtype=np.float64),
        change_pct=np.array(
            [_nan_if_none(o.change_at_horizon_pct) for _, o, _ in labelled], dtype=np.float64
        ),
    )


def outcomes_at_every_row(
    rows: Sequence[MetricRow], *, target: TargetSpec, feed: FeedTimes, grace_seconds: float
) -> list[Outcome]:
    """The outcome evaluation gives a prediction at every row of one coin (rows sorted by time), from the
    coin's real later rows and the feed's row times: the one rule for labels and evaluation."""
    t = np.array([row.timestamp.timestamp() for row in rows], dtype=np.float64)
    high, low, close = (np.array([getattr(row, name) for row in rows], dtype=np.float64) for name in _PRICES)
    extra = {}
    if target.kind == "classic" and target.variable and target.variable not in _PRICES:
        extra[target.variable] = np.array(
            [np.nan if (v := getattr(row, target.variable)) is None else v for row in rows], dtype=np.float64
        )
    outcomes = []
    for i in range(len(rows)):
        since = PricePath(
            t=t[i:],
            high=high[i:],
            low=low[i:],
            close=close[i:],
            columns={name: values[i:] for name, values in extra.items()},
        )
        outcome = evaluate_outcome(
            t0=float(t[i]),
            p0=float(close[i]),
            path=since,
            target=target,
            feed=feed,
            grace_seconds=grace_seconds,
        )
        outcomes.append(outcome)
    return outcomes


_PRICES = ("price_high", "price_low", "price_close")


def _check_trainable(data: Dataset, split: TimeSplit) -> None:
    n_train, n_test = int(split.train.sum()), int(split.test.sum())
    if n_train < MIN_TRAIN_ROWS or n_test < MIN_TEST_ROWS:
        raise TrainingError(
            f"too little labelled data: {n_train} train / {n_test} test rows (need ≥ {MIN_TRAIN_ROWS} / "
            f"≥ {MIN_TEST_ROWS}); record a longer period or shorten the horizon"
        )
    classes = np.unique(data.y[split.train])
    if len(classes) < 2:
        raise TrainingError(
            f"every train row has label {int(classes[0])}; "
            "pick a target that is sometimes reached and sometimes not"
        )


def _present_columns(x: FloatArray) -> list[int]:
    """Columns with at least one value; a feature missing from every train row cannot be learned."""
    used = [j for j in range(x.shape[1]) if not np.all(np.isnan(x[:, j]))]
    if not used:
        raise TrainingError("every feature is missing in every train row; pick features the data has")
    return used


def _signed_change(data: Dataset, mask: BoolArray, target: TargetSpec) -> FloatArray | None:
    if target.kind != "change":
        return None
    sign = -1.0 if target.direction == "down" else 1.0
    return sign * data.change_pct[mask]


def _neg_pos_ratio(y: IntArray) -> float:
    positives = int(y.sum())
    return (len(y) - positives) / positives if positives else 1.0


def _nan_if_none(value: float | None) -> float:
    return np.nan if value is None else value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


# --- algorithms ---


def _reloaded_probabilities(fmt: str, artifact: bytes, model: Any, x: FloatArray) -> FloatArray:
    """P(1) from the reloaded artifact, checked against the in-memory model."""
    predictor = load_predictor(fmt, artifact)
    validate_predictor(predictor, x.shape[1])
    reloaded = predictor.predict_proba(x)
    with _one_thread():
        in_memory = np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)
    drift = float(np.max(np.abs(reloaded - in_memory))) if len(x) else 0.0
    if drift > MAX_EXPORT_DRIFT:
        raise TrainingError(f"the exported {fmt} artifact drifts from the trained model by {drift:.3g}")
    return reloaded


def _one_thread() -> Any:
    """Limit native thread pools (OpenMP, BLAS) to one thread for the block."""
    # multi-threaded OpenMP spins against other busy processes on small machines: HistGradientBoosting took
    # 46 s instead of 0.4 s and XGBoost/LightGBM with 2 threads 100x longer than with 1 on a shared 2-core box
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1)


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
