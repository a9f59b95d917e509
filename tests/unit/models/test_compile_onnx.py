"""Models compile to ONNX graphs that give the original's probabilities; a wrong graph is never served."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.models import compile as compile_module
from coinfleet.models.compile import MAX_DELTA, compile_model, sample_rows
from coinfleet.models.convert import convert_estimator, round_down_f32
from coinfleet.models.dataset import build_dataset
from coinfleet.models.formats import load_predictor
from coinfleet.models.train import Algorithm, TrainedModel, train_model
from coinfleet.targets import TargetSpec
from support import market_rows

pytestmark = pytest.mark.usefixtures("one_thread")

FloatArray = npt.NDArray[np.float64]
TARGET = TargetSpec(kind="change", direction="down", change_percent=1, horizon_seconds=60)
#: fewer trees than the defaults keep the tests quick
FAST: dict[Algorithm, dict[str, Any]] = {
    "xgboost": {"n_estimators": 60},
    "lightgbm": {"n_estimators": 60},
    "hist_gradient_boosting": {"max_iter": 60},
    "random_forest": {"n_estimators": 30},
}


@pytest.fixture(scope="module")
def market() -> list[Any]:
    return market_rows(coins=40, seconds=1200, seed=3)


@pytest.fixture(scope="module")
def trained(market: list[Any]) -> dict[Algorithm, TrainedModel]:
    return {
        algorithm: train_model(market, algorithm=algorithm, target=TARGET, params=FAST[algorithm])
        for algorithm in FAST
    }


def _real_rows(market: list[Any], model: TrainedModel) -> FloatArray:
    """The model's feature rows over the whole market, as a lane sends them (float32 values)."""
    data = build_dataset(market, target=TARGET, features=model.features, label_mode="within")
    rows: FloatArray = data.x.astype(np.float32).astype(np.float64)
    return rows


@pytest.mark.parametrize("algorithm", list(FAST))
def test_onnx_gives_the_native_probabilities(
    algorithm: Algorithm, market: list[Any], trained: dict[Algorithm, TrainedModel]
) -> None:
    model = trained[algorithm]
    rows = _real_rows(market, model)
    assert np.isnan(rows).any()  # the model saw missing values, and must handle them the same way
    served = compile_model(model.format, model.artifact, len(model.features), rows[:200])
    assert served.compiled, served.reason
    assert served.format == "onnx"
    native = load_predictor(model.format, model.artifact)
    compiled = load_predictor("onnx", served.artifact)
    edges = sample_rows(served.artifact, len(model.features))
    for sample in (rows, edges):
        assert np.max(np.abs(compiled.predict_proba(sample) - native.predict_proba(sample))) <= MAX_DELTA


def test_a_wrong_graph_is_caught_and_the_original_serves(trained: dict[Algorithm, TrainedModel]) -> None:
    xgb, lgbm = trained["xgboost"], trained["lightgbm"]
    assert xgb.features == lgbm.features
    other = compile_model(lgbm.format, lgbm.artifact, len(lgbm.features))
    assert other.compiled

    def swapped(estimator: Any, n_features: int) -> bytes:
        convert_estimator(estimator, n_features)  # the real conversion runs, its graph is dropped
        return other.artifact

    served = compile_model(xgb.format, xgb.artifact, len(xgb.features), convert=swapped)
    assert not served.compiled
    assert served.format == "xgboost-json" and served.artifact == xgb.artifact
    assert served.reason is not None and "verification failed" in served.reason


def test_a_model_the_converter_gets_wrong_falls_back(
    market: list[Any], trained: dict[Algorithm, TrainedModel]
) -> None:
    # skl2onnx's tree converter on its own ignores where sklearn's RandomForest sends missing values
    forest = trained["random_forest"]

    def without_missing_routes(estimator: Any, n_features: int) -> bytes:
        graph = onnx.load_from_string(convert_estimator(estimator, n_features))
        for node in graph.graph.node:
            kept = [a for a in node.attribute if a.name != "nodes_missing_value_tracks_true"]
            del node.attribute[:]
            node.attribute.extend(kept)
        return bytes(graph.SerializeToString())

    rows = _real_rows(market, forest)
    served = compile_model(
        forest.format, forest.artifact, len(forest.features), rows, convert=without_missing_routes
    )
    assert not served.compiled and served.format == "skops"
    assert served.reason is not None and "verification failed" in served.reason


def test_an_onnx_artifact_serves_as_it_is(trained: dict[Algorithm, TrainedModel]) -> None:
    xgb = trained["xgboost"]
    graph = compile_model(xgb.format, xgb.artifact, len(xgb.features)).artifact
    served = compile_model("onnx", graph, len(xgb.features))
    assert served.format == "onnx" and served.artifact == graph and not served.compiled


def test_sample_rows_sit_on_and_beside_split_thresholds(trained: dict[Algorithm, TrainedModel]) -> None:
    xgb = trained["xgboost"]
    graph = compile_model(xgb.format, xgb.artifact, len(xgb.features)).artifact
    rows = sample_rows(graph, len(xgb.features), np.zeros((3, len(xgb.features))))
    assert np.all(rows[:3] == 0)
    assert np.isnan(rows).any()
    assert np.array_equal(rows[~np.isnan(rows)], rows[~np.isnan(rows)].astype(np.float32))


def test_a_feature_split_only_at_infinity_still_gets_sample_values() -> None:
    """A LightGBM model trained on the recorded day split one feature at +inf only; sampling it once
    found no value and the model fell back to its slow native runner."""
    values = compile_module._neighbours(np.array([np.inf, -np.inf, 3e38], dtype=np.float32))
    assert len(values) > 0 and np.all(np.isfinite(values))


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=20))
def test_round_down_keeps_every_float32_on_the_same_side(values: list[float]) -> None:
    thresholds = np.array(values, dtype=np.float64)
    rounded = round_down_f32(thresholds)
    assert np.all(rounded <= thresholds)
    assert np.array_equal(rounded.astype(np.float32).astype(np.float64), rounded)
    with np.errstate(over="ignore"):
        above = np.nextafter(rounded.astype(np.float32), np.float32(np.inf)).astype(np.float64)
    assert np.all((above > thresholds) | np.isinf(above))


def test_a_forest_that_float_sums_fail_compiles_with_double_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    y = ((x[:, 0] + rng.normal(0, 1, len(x))) > 0).astype(np.int64)
    forest = RandomForestClassifier(n_estimators=120, random_state=0, n_jobs=1).fit(x, y)
    artifact = skops.io.dumps(forest)
    rows = x[:300].astype(np.float32).astype(np.float64)
    native = load_predictor("skops", artifact)
    single = float(np.max(np.abs(load_predictor("onnx", convert_estimator(forest, 6)).predict_proba(rows)
                                 - native.predict_proba(rows))))  # fmt: skip
    # a bound the float32 sums of this forest miss, as a 2000-tree forest misses 1e-5
    monkeypatch.setattr(compile_module, "MAX_DELTA", single / 4)
    served = compile_model("skops", artifact, 6, rows)
    assert served.compiled and served.max_delta is not None and served.max_delta <= single / 4
    graph = load_predictor("onnx", served.artifact)
    assert np.max(np.abs(graph.predict_proba(rows) - native.predict_proba(rows))) <= single / 4
