"""Train a model on recorded coin_metrics rows: real-future labels, time-ordered split, exported artifact.

Rows become labelled features in `models.dataset`; the algorithms live in `models.algorithms`. The split
is by time: the test set holds the latest ~30 % of prediction times, and a train row is kept only if
every row its label read lies before the first test time (a gap of at least one horizon). A feature
missing from every train row (an optional column the data lacks) is left out of the model and listed in
`metrics["dropped_features"]`. Metrics are computed from the exported artifact as loaded by
`formats.load_predictor`, i.e. from exactly what will serve. The alert threshold stored with the model is
chosen from the test split's predictions (`models.threshold`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from coinfleet.evaluation.calibration import calibration
from coinfleet.evaluation.drift import FeatureReference, references_of
from coinfleet.evaluation.outcomes import DEFAULT_GRACE_SECONDS, LabelMode
from coinfleet.features.spec import DEFAULT_FEATURES, validate_feature_names
from coinfleet.metrics import MetricRow
from coinfleet.models.algorithms import ALGORITHMS, Algorithm, export_model, fit_model, one_thread
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.dataset import Dataset, TrainingError, build_dataset
from coinfleet.models.formats import load_predictor, validate_predictor
from coinfleet.models.spec import ModelSpec
from coinfleet.models.threshold import ALERT_SHARE, alert_threshold
from coinfleet.targets import TargetSpec

__all__ = ["ALGORITHMS", "Algorithm", "TrainedModel", "TrainingError", "train_model"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: share of the prediction times that go to the train side of the split
TRAIN_FRACTION = 0.7
#: fewer labelled rows than this on either side of the split cannot give a meaningful model or metric
MIN_TRAIN_ROWS = 50
MIN_TEST_ROWS = 20
#: largest |Δp| allowed between the in-memory model and its reloaded artifact
MAX_EXPORT_DRIFT = 1e-6


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
    #: p ≥ this alerts on ALERT_SHARE of the test split's predictions (see models.threshold)
    alert_threshold: float
    #: per feature, its train distribution (evaluation.drift), for live drift against it
    drift_reference: dict[str, FeatureReference] = field(default_factory=dict, repr=False)

    def to_bundle(self, name: str, *, alert_threshold: float | None = None) -> ModelBundle:
        """The model as a bundle, ready to write to disk or import; its alert threshold is the one chosen
        from the validation data unless `alert_threshold` overrides it."""
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
            alert_threshold=self.alert_threshold if alert_threshold is None else alert_threshold,
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
    alert_share: float = ALERT_SHARE,
    max_age_seconds: float | None = None,
) -> TrainedModel:
    """Train `algorithm` on rows of any coins in any order; raise TrainingError when the data cannot.
    The alert threshold lets `alert_share` of the test split's predictions alert. With `max_age_seconds`
    only rows of coins at most that old are trained and tested on (older rows still give the labels)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    validate_feature_names(features)
    data = build_dataset(
        rows, target=target, features=features, label_mode=label_mode, grace_seconds=grace_seconds
    )
    split = time_split(data.t0, data.label_end, train_fraction=TRAIN_FRACTION)
    if max_age_seconds is not None:
        young = data.age <= max_age_seconds
        split = TimeSplit(train=split.train & young, test=split.test & young, split_at=split.split_at)
    _check_trainable(data, split)
    used = _present_columns(data.x[split.train])
    x_train, x_test = data.x[split.train][:, used], data.x[split.test][:, used]
    model, chosen = fit_model(algorithm, x_train, data.y[split.train], seed=seed, params=params)
    fmt, artifact = export_model(algorithm, model)
    proba = _reloaded_probabilities(fmt, artifact, model, x_test)
    metrics = evaluation_metrics(data.y[split.test], proba, _signed_change(data, split.test, target))
    threshold = alert_threshold(proba, data.y[split.test], alert_share)
    dropped = [name for j, name in enumerate(features) if j not in used]
    metrics.update(n_train=int(split.train.sum()), split_at=_iso(split.split_at), dropped_features=dropped)
    metrics["alert_rule"] = threshold.as_dict()
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
        alert_threshold=threshold.threshold,
        drift_reference=references_of(x_train, [features[j] for j in used]),
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


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _reloaded_probabilities(fmt: str, artifact: bytes, model: Any, x: FloatArray) -> FloatArray:
    """P(1) from the reloaded artifact, checked against the in-memory model."""
    predictor = load_predictor(fmt, artifact)
    validate_predictor(predictor, x.shape[1])
    reloaded = predictor.predict_proba(x)
    with one_thread():
        in_memory = np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)
    drift = float(np.max(np.abs(reloaded - in_memory))) if len(x) else 0.0
    if drift > MAX_EXPORT_DRIFT:
        raise TrainingError(f"the exported {fmt} artifact drifts from the trained model by {drift:.3g}")
    return reloaded
