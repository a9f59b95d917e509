"""Models as sklearn-API classifiers and those as ONNX graphs: the conversion half of `models.compile`.

sklearn forests and trees are built with numpy in double precision (`models.forest_graph`). For the
rest the XGBoost and LightGBM converters of onnxmltools are registered into skl2onnx and
`convert_sklearn` builds the graph (zipmap off, opsets 18 / ml 3). Float64 split thresholds are
rounded down to float32 first, so every float32 input the lanes send stays on the same side of every
split.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from coinfleet.errors import CoinfleetError
from coinfleet.models.forest_graph import forest_graph, is_sklearn_forest
from coinfleet.models.formats import Predictor, load_predictor

FloatArray = npt.NDArray[np.float64]
#: opsets of the graphs skl2onnx builds
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
_THRESHOLD_LINE = re.compile(rb"^threshold=(.*)$", re.MULTILINE)
_TREE_SIZES_LINE = re.compile(rb"^tree_sizes=.*$", re.MULTILINE)
_TREE_START = re.compile(rb"(?=^Tree=)", re.MULTILINE)


class CompileError(CoinfleetError):
    """A model could not be compiled to a verified ONNX graph (the original serves instead)."""


def convert_estimator(estimator: Any, n_features: int, *, double: bool = False) -> bytes:
    """An sklearn-API classifier as an ONNX graph: float input [N, n], probabilities [N, 2].
    `double`: double input, thresholds and sums (the tree operators of ai.onnx.ml 3 allow it).
    An sklearn forest or tree always sums in double (`forest_graph`), whatever `double` says."""
    if is_sklearn_forest(estimator):
        return forest_graph(estimator, n_features)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    _register_converters()
    tensor = DoubleTensorType if double else FloatTensorType
    graph = convert_sklearn(
        estimator,
        initial_types=[("input", tensor([None, n_features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return bytes(graph.SerializeToString())


def _register_converters() -> None:
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for cls, alias, converter in (
        (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
        (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
    ):
        update_registered_converter(
            cls, alias, calculate_linear_classifier_output_shapes, converter, options=options
        )


def estimator_of(fmt: str, artifact: bytes, native: Predictor) -> Any:
    """The model as an sklearn-API classifier, float64 thresholds rounded down to float32."""
    if fmt == "xgboost-json":
        return _xgboost_classifier(artifact)
    if fmt == "lightgbm-text":
        return _lightgbm_classifier(artifact, native)
    estimator = getattr(native, "_estimator", None)  # formats.py keeps the loaded sklearn object here
    if estimator is None:
        raise CompileError("the loaded skops model exposes no estimator")
    return _hgb_rounded(estimator) if hasattr(estimator, "_predictors") else estimator


def _xgboost_classifier(artifact: bytes) -> Any:
    from xgboost import XGBClassifier

    classifier = XGBClassifier(n_jobs=1)
    classifier.load_model(bytearray(artifact))
    return classifier


def _lightgbm_classifier(artifact: bytes, native: Predictor) -> Any:
    import lightgbm

    # loaded through formats, which refuses a malformed text instead of letting LightGBM abort the process
    booster = getattr(load_predictor("lightgbm-text", _lightgbm_rounded(artifact)), "_booster", None)
    if booster is None:
        raise CompileError("the loaded LightGBM model exposes no booster")
    n_features = native.n_features
    if n_features is None:
        raise CompileError("the LightGBM model does not say how many features it takes")
    classifier = lightgbm.LGBMClassifier(n_jobs=1)
    # LGBMClassifier has no public way to adopt a trained Booster; these are the fields fit() sets
    classifier._Booster = booster
    classifier.fitted_ = True
    classifier._n_classes = 2
    classifier._classes = np.array([0, 1])
    classifier._n_features = n_features
    classifier._n_features_in = n_features
    classifier._objective = "binary"
    return classifier


def _lightgbm_rounded(artifact: bytes) -> bytes:
    """The model text with every numeric split threshold rounded down to float32 (tree_sizes updated)."""
    if re.search(rb"^num_cat=[1-9]", artifact, re.MULTILINE):
        raise CompileError("LightGBM model has categorical splits; their thresholds are not numbers")
    start = artifact.find(b"\nTree=") + 1
    end = artifact.find(b"\nend of trees", start) + 1
    if not start or not end:
        raise CompileError("LightGBM model text has no trees")
    blocks = [
        _THRESHOLD_LINE.sub(_rounded_thresholds, block) for block in _TREE_START.split(artifact[start:end])
    ]
    sizes = b"tree_sizes=" + b" ".join(str(len(block)).encode() for block in blocks if block)
    header = _TREE_SIZES_LINE.sub(lambda _: sizes, artifact[:start])
    return header + b"".join(blocks) + artifact[end:]


def _rounded_thresholds(match: re.Match[bytes]) -> bytes:
    values = np.array([float(v) for v in match[1].split()], dtype=np.float64)
    return b"threshold=" + b" ".join(repr(float(v)).encode() for v in round_down_f32(values))


def _hgb_rounded(estimator: Any) -> Any:
    """A copy of a HistGradientBoosting model with its numeric thresholds rounded down to float32."""
    if getattr(estimator, "_preprocessor", None) is not None:
        raise CompileError("HistGradientBoosting with categorical features is not compiled")
    rounded = copy.deepcopy(estimator)
    for predictors in rounded._predictors:
        for predictor in predictors:
            nodes = predictor.nodes
            nodes["num_threshold"] = round_down_f32(nodes["num_threshold"])
    return rounded


def round_down_f32(values: FloatArray) -> FloatArray:
    """The largest float32 ≤ each value, as float64: `x <= t` then holds for the same float32 x."""
    with np.errstate(over="ignore"):  # beyond float32's range: inf, stepped down to the largest float32
        single = values.astype(np.float32)
    over = single.astype(np.float64) > values
    single[over] = np.nextafter(single[over], np.float32(-np.inf))
    result: FloatArray = single.astype(np.float64)
    return result
