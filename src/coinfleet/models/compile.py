"""Compile models to ONNX for serving, verified against the original; cached by artifact hash.

One route for every model type (STACK.md): the XGBoost and LightGBM converters of onnxmltools are
registered into skl2onnx and `convert_sklearn` builds the graph (zipmap off, opsets 18 / ml 3). The
compiled graph serves only if it gives the original's probabilities within `MAX_DELTA` on sample
rows: real rows when there are any, plus rows that sit on, just below and just above every split
threshold of the graph, with NaN mixed in. Otherwise the original serves and the reason is logged.
A serving process never converts itself: `served_form` runs the conversion in a sandboxed child
(sandbox.py) with a timeout and a memory limit, and keeps only the verified graph bytes.

Lanes score float32 rows. LightGBM and HistGradientBoosting compare against float64 thresholds, which
ONNX rounds to the nearest float32; rounding each threshold *down* first keeps every float32 input on
the same side of every split, so the compiled graph agrees with the original on all rows it will see.
sklearn's trees send a missing value down the side each node chose at fit time; the graph is told the
same, which skl2onnx leaves out (without it a RandomForest trained on rows with NaN fails verification).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog

from coinfleet.db.sql import query
from coinfleet.errors import CoinfleetError
from coinfleet.models.formats import Predictor, load_predictor, validate_predictor
from coinfleet.models.registry import ModelRecord
from coinfleet.models.sandbox import SandboxError, SandboxLimits, run_job

log = structlog.get_logger(__name__)
FloatArray = npt.NDArray[np.float64]
Converter = Callable[[Any, int], bytes]

#: largest |Δp| between the compiled graph and the original on any sample row
MAX_DELTA = 1e-5
#: formats a converter exists for (an "onnx" artifact serves as it is)
COMPILABLE: tuple[str, ...] = ("xgboost-json", "lightgbm-text", "skops")
#: opsets of the compiled graphs (STACK.md)
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
#: synthetic rows that walk the trees, and the share of their values that are NaN
_TREE_ROWS = 768
_NAN_SHARE = 0.1
#: LightGBM's zero threshold, and a bound that keeps sample values finite in float32
_ZERO = float(np.float32(1e-35))
_LARGEST = 1e30
#: TreeEnsemble attributes that hold split features and thresholds
_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_THRESHOLD_LINE = re.compile(rb"^threshold=(.*)$", re.MULTILINE)
_TREE_SIZES_LINE = re.compile(rb"^tree_sizes=.*$", re.MULTILINE)
_TREE_START = re.compile(rb"(?=^Tree=)", re.MULTILINE)


class CompileError(CoinfleetError):
    """A model could not be compiled to a verified ONNX graph (the original serves instead)."""


@dataclass(frozen=True, kw_only=True)
class Served:
    """What a runner loads: the verified ONNX graph, or the original with the reason why."""

    format: str  #: format for `formats.load_predictor`
    artifact: bytes
    compiled: bool
    reason: str | None = None  #: why the original serves
    max_delta: float | None = None  #: largest |Δp| seen in verification


def recipe() -> str:
    """Identifies the conversion route; a cached graph from another route is not reused."""
    versions = "/".join(f"{name}-{version(name)}" for name in ("skl2onnx", "onnxmltools", "onnx"))
    return f"v1/{versions}/opset{TARGET_OPSET['']}-ml{TARGET_OPSET['ai.onnx.ml']}"


def compile_model(
    fmt: str,
    artifact: bytes,
    n_features: int,
    real_rows: FloatArray | None = None,
    *,
    convert: Converter | None = None,
) -> Served:
    """The verified ONNX form of a model, or the original with the reason; ModelLoadError if it can't load."""
    native = load_predictor(fmt, artifact)
    validate_predictor(native, n_features)
    if fmt == "onnx":
        return Served(format=fmt, artifact=artifact, compiled=False, reason="already ONNX")
    if fmt not in COMPILABLE:
        return _native(fmt, artifact, f"no ONNX converter for format {fmt}")
    try:
        estimator = _estimator(fmt, artifact, native)
        graph = (convert or convert_estimator)(estimator, n_features)
        rows = sample_rows(graph, n_features, real_rows)
        try:
            delta = verify(graph, native, rows)
        except CompileError:
            if convert is not None:
                raise
            # float32 sums over many trees drift (|Δp| 1.3e-5 for 2000 trees); double sums do not
            graph = convert_estimator(estimator, n_features, double=True)
            delta = verify(graph, native, rows)
    except Exception as exc:  # a converter may fail in any way; the original still serves
        return _native(fmt, artifact, f"{type(exc).__name__}: {_first_line(exc)}")
    return Served(format="onnx", artifact=graph, compiled=True, max_delta=delta)


def _native(fmt: str, artifact: bytes, reason: str) -> Served:
    return Served(format=fmt, artifact=artifact, compiled=False, reason=reason)


def verify(graph: bytes, native: Predictor, rows: FloatArray) -> float:
    """Largest |Δp| between graph and original on `rows`; CompileError when above `MAX_DELTA`."""
    compiled = load_predictor("onnx", graph)
    if compiled.n_features != native.n_features:
        raise CompileError(f"graph takes {compiled.n_features} features, the model {native.n_features}")
    delta = float(np.max(np.abs(compiled.predict_proba(rows) - native.predict_proba(rows))))
    if not delta <= MAX_DELTA:
        raise CompileError(f"verification failed: max |Δp| = {delta:.3g} on {len(rows)} rows")
    return delta


def sample_rows(graph: bytes, n_features: int, real_rows: FloatArray | None = None) -> FloatArray:
    """Float32-valued rows: the real ones, then rows on and beside every split threshold, NaN mixed in."""
    rng = np.random.default_rng(0)
    candidates = _split_candidates(graph, n_features)
    synthetic = np.empty((_TREE_ROWS, n_features), dtype=np.float64)
    for j, values in enumerate(candidates):
        synthetic[:, j] = rng.choice(values, size=_TREE_ROWS)
    synthetic[rng.random(synthetic.shape) < _NAN_SHARE] = np.nan
    synthetic[0] = np.nan
    parts = [synthetic] if real_rows is None else [np.asarray(real_rows, dtype=np.float64), synthetic]
    rows: FloatArray = np.concatenate(parts).astype(np.float32).astype(np.float64)
    return rows


def _split_candidates(graph: bytes, n_features: int) -> list[FloatArray]:
    """Per feature: each threshold and its float32 neighbours (or a few plain values if it never splits)."""
    import onnx

    found: list[list[float]] = [[] for _ in range(n_features)]
    for node in onnx.load_model_from_string(graph).graph.node:
        if node.op_type in _TREE_OPS:
            attrs = {a.name: a for a in node.attribute}
            modes = [m.decode() for m in attrs["nodes_modes"].strings]
            pairs = zip(attrs["nodes_featureids"].ints, attrs["nodes_values"].floats, modes, strict=True)
            for feature, threshold, mode in pairs:
                if mode != "LEAF" and 0 <= feature < n_features:
                    found[feature].append(threshold)
    return [_neighbours(np.asarray(v, dtype=np.float32)) for v in found]


def _neighbours(thresholds: npt.NDArray[np.float32]) -> FloatArray:
    if not len(thresholds):
        return np.array([-1.0, 0.0, 1.0, 1e3], dtype=np.float64)
    below = np.nextafter(thresholds, np.float32(-np.inf))
    above = np.nextafter(thresholds, np.float32(np.inf))
    values = np.concatenate([below, thresholds, above]).astype(np.float64)
    # LightGBM reads |x| ≤ 1e-35 as exactly 0 (its zero threshold); features never hold such values
    values[np.abs(values) <= _ZERO] = 0.0
    return np.unique(values[np.abs(values) < _LARGEST])


# --- conversion ---


def convert_estimator(estimator: Any, n_features: int, *, double: bool = False) -> bytes:
    """An sklearn-API classifier as an ONNX graph: float input [N, n], probabilities [N, 2].
    `double`: double input, thresholds and sums (the tree operators of ai.onnx.ml 3 allow it)."""
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
    _route_missing_values(graph, estimator)
    return bytes(graph.SerializeToString())


def _route_missing_values(graph: Any, estimator: Any) -> None:
    """Send NaN down the side each sklearn tree node chose at fit time, as sklearn does.

    skl2onnx leaves `nodes_missing_value_tracks_true` out, so a NaN would take ONNX's default branch;
    a node's true branch is sklearn's left child, hence the flag is sklearn's `missing_go_to_left`.
    """
    from onnx import helper

    trees = [member.tree_ for member in getattr(estimator, "estimators_", [])]
    if hasattr(estimator, "tree_"):
        trees = [estimator.tree_]
    if not trees or not all(hasattr(tree, "missing_go_to_left") for tree in trees):
        return
    for node in graph.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attributes = {a.name: a for a in node.attribute}
        pairs = zip(attributes["nodes_treeids"].ints, attributes["nodes_nodeids"].ints, strict=True)
        tracks = [int(trees[tree].missing_go_to_left[index]) for tree, index in pairs]
        if "nodes_missing_value_tracks_true" in attributes:
            node.attribute.remove(attributes["nodes_missing_value_tracks_true"])
        node.attribute.append(helper.make_attribute("nodes_missing_value_tracks_true", tracks))


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


def _estimator(fmt: str, artifact: bytes, native: Predictor) -> Any:
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


def _first_line(exc: Exception) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


# --- cache ---


async def served_form(
    pool: asyncpg.Pool,
    *,
    name: str,
    fmt: str,
    artifact: bytes,
    sha256: str,
    n_features: int,
    real_rows: Callable[[], Awaitable[FloatArray | None]] | None = None,
    limits: SandboxLimits | None = None,
) -> Served:
    """The form to serve, compiled once per artifact and route (the result is cached in the database)."""
    if fmt not in COMPILABLE:
        return _native(fmt, artifact, f"format {fmt} is served as imported")
    key = recipe()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(query("get_compiled"), sha256, key)
    if row is not None:
        served = _from_cache(fmt, artifact, row)
    else:
        rows = await real_rows() if real_rows is not None else None
        served, final = await compile_in_sandbox(
            fmt, artifact, n_features, rows, limits=limits or SandboxLimits(), name=name
        )
        graph = served.artifact if served.compiled else None
        if final:
            async with pool.acquire() as conn:
                await conn.execute(
                    query("save_compiled"), sha256, key, graph, served.max_delta, served.reason
                )
    _log_served(name, served, cached=row is not None)
    return served


async def compile_in_sandbox(
    fmt: str,
    artifact: bytes,
    n_features: int,
    rows: FloatArray | None,
    *,
    limits: SandboxLimits,
    name: str = "model",
) -> tuple[Served, bool]:
    """`compile_model` in a child process (sandbox.py): the serving process neither converts nor holds
    the converter's memory, and a conversion that hangs or bloats is cut off at its limits and the
    original serves. Also whether the result is final (worth caching): a timeout may pass next time.
    ModelLoadError when the model itself does not load."""
    header = {
        "format": fmt,
        "n_features": n_features,
        "artifact_bytes": len(artifact),
        "rows_shape": None if rows is None else list(rows.shape),
    }
    payload = artifact if rows is None else artifact + np.ascontiguousarray(rows, dtype=np.float64).tobytes()
    try:
        answer, graph = await run_job(
            "coinfleet.models.inspection:compile_file", header, payload, limits, what=f"model {name!r}"
        )
    except SandboxError as exc:
        if exc.reason == "refused":
            raise
        return _native(fmt, artifact, f"compiling was stopped: {exc}"), exc.reason != "timeout"
    if not answer["compiled"]:
        return _native(fmt, artifact, str(answer["reason"])), True
    return Served(format="onnx", artifact=graph, compiled=True, max_delta=answer["max_delta"]), True


def _from_cache(fmt: str, artifact: bytes, row: Any) -> Served:
    if row["onnx"] is None:
        return _native(fmt, artifact, row["fallback_reason"])
    return Served(format="onnx", artifact=row["onnx"], compiled=True, max_delta=row["max_delta"])


def _log_served(name: str, served: Served, *, cached: bool) -> None:
    if served.compiled:
        log.info("onnx_compiled", model=name, max_delta=served.max_delta, cached=cached)
    else:
        log.info("onnx_fallback", model=name, reason=served.reason, cached=cached)


async def served_model(
    pool: asyncpg.Pool,
    model: ModelRecord,
    artifact: bytes,
    real_rows: Callable[[], Awaitable[FloatArray | None]] | None = None,
    limits: SandboxLimits | None = None,
) -> Served:
    """`served_form` for a registered model."""
    return await served_form(
        pool,
        name=model.name,
        fmt=model.format,
        artifact=artifact,
        sha256=model.artifact_sha256,
        n_features=len(model.features),
        real_rows=real_rows,
        limits=limits,
    )
