"""Model files of every format: round trips, corrupt or untrusted files refused, validation dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from coinfleet.errors import ModelLoadError
from coinfleet.models.formats import (
    FORMATS,
    Predictor,
    detect_format,
    load_predictor,
    validate_predictor,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FloatArray = npt.NDArray[np.float64]
N_FEATURES = 5


@pytest.fixture(scope="module")
def data() -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """A small binary problem with missing values."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, N_FEATURES))
    y = ((x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, 300)) > 0).astype(np.int64)
    x[::7, 2] = np.nan
    return x, y


def _xgboost(data: tuple[FloatArray, Any], raw_format: str = "json") -> tuple[bytes, Any]:
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(*data)
    return bytes(model.get_booster().save_raw(raw_format)), model


def _lightgbm(data: tuple[FloatArray, Any]) -> tuple[bytes, Any]:
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, n_jobs=1).fit(*data)
    return str(model.booster_.model_to_string()).encode(), model


def _skops(model: Any, data: tuple[FloatArray, Any]) -> tuple[bytes, Any]:
    import skops.io

    model.fit(*data)
    return bytes(skops.io.dumps(model)), model


def _hgb(data: tuple[FloatArray, Any]) -> tuple[bytes, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return _skops(HistGradientBoostingClassifier(max_iter=20, random_state=0), data)


def _rf(data: tuple[FloatArray, Any]) -> tuple[bytes, Any]:
    from sklearn.ensemble import RandomForestClassifier

    return _skops(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0, n_jobs=1), data)


def _onnx(data: tuple[FloatArray, Any], zipmap: bool = False) -> tuple[bytes, Any]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(*data)
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={"zipmap": zipmap},
        target_opset={"": 18, "ai.onnx.ml": 3},
    )
    return bytes(onx.SerializeToString()), model


BUILDERS = {
    "xgboost-json": _xgboost,
    "xgboost-ubj": lambda d: _xgboost(d, "ubj"),
    "lightgbm-text": _lightgbm,
    "skops-hgb": _hgb,
    "skops-rf": _rf,
    "onnx": _onnx,
}


def _format(case: str) -> str:
    return {"xgboost-ubj": "xgboost-json", "skops-hgb": "skops", "skops-rf": "skops"}.get(case, case)


@pytest.mark.parametrize("case", BUILDERS)
def test_round_trip_reproduces_the_native_probabilities(case: str, data: tuple[FloatArray, Any]) -> None:
    artifact, model = BUILDERS[case](data)
    predictor = load_predictor(_format(case), artifact)
    assert predictor.n_features == N_FEATURES
    validate_predictor(predictor, N_FEATURES)
    x = data[0][:50]
    proba = predictor.predict_proba(x)
    assert proba.dtype == np.float64
    assert proba.shape == (50,)
    tolerance = 1e-5 if case == "onnx" else 1e-7
    np.testing.assert_allclose(proba, model.predict_proba(x)[:, 1], atol=tolerance)


@pytest.mark.parametrize("case", BUILDERS)
def test_corrupted_files_are_refused(case: str, data: tuple[FloatArray, Any]) -> None:
    artifact, _ = BUILDERS[case](data)
    for broken in (b"this is not a model", artifact[: len(artifact) // 3]):
        with pytest.raises(ModelLoadError, match=r"not a valid|objective|skops|ONNX"):
            load_predictor(_format(case), broken)


def test_xgboost_tree_with_a_broken_child_link_is_refused(data: tuple[FloatArray, Any]) -> None:
    artifact, _ = _xgboost(data)
    document = json.loads(artifact)
    document["learner"]["gradient_booster"]["model"]["trees"][3]["left_children"][0] = 10_000
    with pytest.raises(ModelLoadError, match="tree 3 has bad links"):
        load_predictor("xgboost-json", json.dumps(document).encode())


def test_xgboost_split_on_a_missing_feature_is_refused(data: tuple[FloatArray, Any]) -> None:
    artifact, _ = _xgboost(data)
    document = json.loads(artifact)
    document["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = N_FEATURES
    with pytest.raises(ModelLoadError, match="tree 0 has bad links, parents, features"):
        load_predictor("xgboost-json", json.dumps(document).encode())


def test_lightgbm_tree_with_a_broken_child_link_is_refused(data: tuple[FloatArray, Any]) -> None:
    artifact, _ = _lightgbm(data)
    broken = artifact.replace(b"\nleft_child=", b"\nleft_child=-99 ", 1)
    with pytest.raises(ModelLoadError, match="tree 0 has a wrong number of left_child"):
        load_predictor("lightgbm-text", broken)


def test_lightgbm_file_cut_after_its_trees_still_loads(data: tuple[FloatArray, Any]) -> None:
    artifact, model = _lightgbm(data)
    cut = artifact[: artifact.index(b"parameters:") + 20]
    proba = load_predictor("lightgbm-text", cut).predict_proba(data[0][:20])
    np.testing.assert_allclose(proba, model.predict_proba(data[0][:20])[:, 1], atol=1e-12)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_files_are_refused(fmt: str) -> None:
    with pytest.raises(ModelLoadError, match="empty"):
        load_predictor(fmt, b"")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="unknown model format 'pickle'"):
        load_predictor("pickle", b"\x80\x04")


def test_skops_file_with_an_untrusted_type_is_refused(data: tuple[FloatArray, Any]) -> None:
    from xgboost import XGBClassifier

    artifact, _ = _skops(XGBClassifier(n_estimators=2, n_jobs=1), data)
    with pytest.raises(ModelLoadError, match=r"does not trust: .*xgboost\.sklearn\.XGBClassifier"):
        load_predictor("skops", artifact)


def test_skops_model_that_is_not_binary_is_refused(data: tuple[FloatArray, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.nan_to_num(data[0])
    artifact, _ = _skops(LogisticRegression(), (x, np.arange(len(x)) % 3))
    with pytest.raises(ModelLoadError, match="0/1 classifier"):
        load_predictor("skops", artifact)


def test_xgboost_regressor_is_refused(data: tuple[FloatArray, Any]) -> None:
    from xgboost import XGBRegressor

    model = XGBRegressor(n_estimators=2, n_jobs=1).fit(*data)
    with pytest.raises(ModelLoadError, match="binary:logistic"):
        load_predictor("xgboost-json", bytes(model.get_booster().save_raw("json")))


def test_lightgbm_regressor_is_refused(data: tuple[FloatArray, Any]) -> None:
    from lightgbm import LGBMRegressor

    model = LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(*data)
    with pytest.raises(ModelLoadError, match="binary classifier"):
        load_predictor("lightgbm-text", str(model.booster_.model_to_string()).encode())


def test_onnx_with_zipmap_output_is_refused(data: tuple[FloatArray, Any]) -> None:
    artifact, _ = _onnx(data, zipmap=True)
    with pytest.raises(ModelLoadError, match=r"\[N, 2\] probability output"):
        load_predictor("onnx", artifact)


@pytest.mark.parametrize("case", BUILDERS)
def test_wrong_feature_count_is_refused(case: str, data: tuple[FloatArray, Any]) -> None:
    artifact, _ = BUILDERS[case](data)
    predictor = load_predictor(_format(case), artifact)
    with pytest.raises(ModelLoadError, match=f"expects {N_FEATURES} features but its feature list names 4"):
        validate_predictor(predictor, N_FEATURES - 1)


class _Fake:
    """A predictor returning fixed values, for the dry-run checks."""

    def __init__(self, values: FloatArray | None = None, n_features: int | None = None) -> None:
        self._values = values
        self.n_features = n_features

    def predict_proba(self, x: FloatArray) -> FloatArray:
        if self._values is None:
            raise RuntimeError("boom")
        return self._values


@pytest.mark.parametrize(
    ("predictor", "message"),
    [
        (_Fake(np.full(8, 1.5)), r"outside \[0, 1\]"),
        (_Fake(np.full(8, np.nan)), "non-finite"),
        (_Fake(np.full(3, 0.5)), "misshaped"),
        (_Fake(None), "dry run on sample rows: boom"),
    ],
)
def test_dry_run_refuses_bad_probabilities(predictor: Predictor, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        validate_predictor(predictor, 3)


def test_dry_run_accepts_sound_probabilities() -> None:
    validate_predictor(_Fake(np.linspace(0, 1, 8)), 3)


def _two_column_graph(class_zero: str) -> bytes:
    """An ONNX classifier whose class-1 column is sound (sigmoid of the first feature, NaN read as 0) and
    whose class-0 column is `class_zero`: "complement" (1 - p), "same" (p again: no probabilities) or
    "nan" (NaN for every row)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("IsNaN", ["input"], ["missing"]),
        helper.make_node("Where", ["missing", "zero", "input"], ["clean"]),
        helper.make_node("Slice", ["clean", "start", "end", "axis"], ["first"]),
        helper.make_node("Sigmoid", ["first"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Mul", ["p", "nan"], ["nans"]),
        helper.make_node("Concat", [{"complement": "q", "same": "p", "nan": "nans"}[class_zero], "p"],
                         ["probabilities"], axis=1),
    ]  # fmt: skip
    constants = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]),
        *(
            helper.make_tensor(k, TensorProto.INT64, [1], [v])
            for k, v in (("start", 0), ("end", 1), ("axis", 1))
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "two_columns",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return bytes(model.SerializeToString())


@pytest.mark.parametrize(
    ("class_zero", "message"),
    [("same", "do not sum to 1"), ("nan", "class probabilities that are non-finite")],
)
def test_dry_run_checks_both_classes_of_a_graph(class_zero: str, message: str) -> None:
    validate_predictor(load_predictor("onnx", _two_column_graph("complement")), 3)
    predictor = load_predictor("onnx", _two_column_graph(class_zero))
    assert np.all(np.isfinite(predictor.predict_proba(np.zeros((2, 3)))))  # class 1 alone looks sound
    with pytest.raises(ModelLoadError, match=message):
        validate_predictor(predictor, 3)


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("model.json", "xgboost-json"),
        ("dir/model.UBJ", "xgboost-json"),
        ("model.txt", "lightgbm-text"),
        ("model.skops", "skops"),
        ("/a/b/model.onnx", "onnx"),
    ],
)
def test_detect_format_by_suffix(filename: str, fmt: str) -> None:
    assert detect_format(filename) == fmt


@pytest.mark.parametrize("filename", ["model.pkl", "model.joblib", "model"])
def test_detect_format_refuses_other_suffixes(filename: str) -> None:
    with pytest.raises(ModelLoadError, match="cannot tell the format"):
        detect_format(filename)


_FUZZ = """
import sys
import numpy as np
from coinfleet.errors import ModelLoadError
from coinfleet.models.formats import load_predictor, validate_predictor

fmt, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
rng = np.random.default_rng(0)
variants = [data[:cut] for cut in np.linspace(1, len(data) - 1, 40).astype(int)]
for _ in range(150):
    flipped = bytearray(data)
    flipped[int(rng.integers(len(data)))] = int(rng.integers(256))
    variants.append(bytes(flipped))
for variant in variants:
    try:
        validate_predictor(load_predictor(fmt, variant), 5)
    except ModelLoadError:
        pass
print("survived")
"""


@pytest.mark.slow
@pytest.mark.parametrize("case", BUILDERS)
def test_cut_or_flipped_files_never_crash_the_process(
    case: str, data: tuple[FloatArray, Any], tmp_path: Path
) -> None:
    artifact, _ = BUILDERS[case](data)
    path = tmp_path / "model.bin"
    path.write_bytes(artifact)
    result = subprocess.run(
        [sys.executable, "-c", _FUZZ, _format(case), str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("survived")


def test_importing_formats_loads_no_training_library() -> None:
    heavy = "('xgboost', 'lightgbm', 'sklearn', 'skops', 'onnxruntime')"
    code = f"import sys, coinfleet.models.formats; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
