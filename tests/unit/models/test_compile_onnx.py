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
from coinfleet.models.forest_graph import ForestGraphError, forest_graph, is_sklearn_forest
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


def test_a_forest_graph_sums_in_double_where_float32_sums_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 sums of many trees miss the check (a 2000-tree forest missed 1e-5); skl2onnx's double
    route then never finished: its threshold search loops forever on the +inf thresholds sklearn gives
    a split that sends only missing values one way. The forest graph sums in double from the start."""
    import skops.io
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    y = ((x[:, 0] + rng.normal(0, 1, len(x))) > 0).astype(np.int64)
    x[300:][rng.random((1700, 6)) < 0.1] = np.nan
    forest = RandomForestClassifier(n_estimators=120, random_state=0, n_jobs=1).fit(x, y)
    assert any(np.isinf(tree.tree_.threshold).any() for tree in forest.estimators_)
    artifact = skops.io.dumps(forest)
    rows = x[:300].astype(np.float32).astype(np.float64)  # no NaN: skl2onnx alone routes NaN wrongly
    native = load_predictor("skops", artifact)
    float_sums = convert_sklearn(
        forest, initial_types=[("input", FloatTensorType([None, 6]))], options={"zipmap": False}
    ).SerializeToString()
    drift = float(
        np.max(np.abs(load_predictor("onnx", float_sums).predict_proba(rows) - native.predict_proba(rows)))
    )
    monkeypatch.setattr(compile_module, "MAX_DELTA", drift / 4)  # a bound the float32 sums miss
    served = compile_model("skops", artifact, 6, rows)
    assert served.compiled and served.max_delta is not None
    # only the float32 output rounds: |Δp| ≤ 2^-25 for p in [0, 1]
    assert served.max_delta <= 2**-25 < drift / 4
    graph = load_predictor("onnx", served.artifact)
    assert np.max(np.abs(graph.predict_proba(rows) - native.predict_proba(rows))) <= 2**-25
    (ensemble,) = [
        n for n in onnx.load_from_string(served.artifact).graph.node if n.op_type.startswith("Tree")
    ]
    tensors = {a.name: a.t.data_type for a in ensemble.attribute if a.name.endswith("_as_tensor")}
    assert tensors == {
        "nodes_values_as_tensor": onnx.TensorProto.DOUBLE,
        "class_weights_as_tensor": onnx.TensorProto.DOUBLE,
    }


@pytest.mark.parametrize("kind", ["tree", "random_forest", "extra_trees"])
def test_each_sklearn_tree_kind_compiles_with_missing_values_routed(kind: str) -> None:
    import skops.io
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 5))
    y = ((x[:, 0] - x[:, 1] + rng.normal(0, 0.5, len(x))) > 0).astype(np.int64)
    x[rng.random(x.shape) < 0.15] = np.nan  # trained with missing values: each node picks a side for them
    model = {
        "tree": DecisionTreeClassifier(max_depth=8, random_state=0),
        "random_forest": RandomForestClassifier(n_estimators=25, random_state=0, n_jobs=1),
        "extra_trees": ExtraTreesClassifier(n_estimators=25, random_state=0, n_jobs=1),
    }[kind].fit(x, y)
    artifact = skops.io.dumps(model)
    rows = x[:400].astype(np.float32).astype(np.float64)
    served = compile_model("skops", artifact, 5, rows)
    assert served.compiled, served.reason
    native, graph = load_predictor("skops", artifact), load_predictor("onnx", served.artifact)
    for sample in (rows, sample_rows(served.artifact, 5)):
        assert np.max(np.abs(graph.predict_proba(sample) - native.predict_proba(sample))) <= 2**-25


def test_only_averaged_trees_take_the_forest_route() -> None:
    from sklearn.ensemble import BaggingClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(200, 4)), rng.integers(0, 2, 200)
    assert is_sklearn_forest(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y))
    # bagging gives each tree its own feature subset; gradient boosting adds raw scores
    bagged = BaggingClassifier(DecisionTreeClassifier(), n_estimators=3, max_features=2, random_state=0)
    assert not is_sklearn_forest(bagged.fit(x, y))
    assert not is_sklearn_forest(GradientBoostingClassifier(n_estimators=3).fit(x, y))
    with pytest.raises(ForestGraphError, match="classes"):
        forest_graph(RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y + 1), 4)
