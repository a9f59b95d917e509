"""Compile models to ONNX for serving, verified against the original; cached by artifact hash.

`models.convert` builds the graph: sklearn forests and trees with numpy, in double precision
(`models.forest_graph`); the rest through skl2onnx, with the XGBoost and LightGBM converters of
onnxmltools registered into it (zipmap off, opsets 18 / ml 3). The compiled graph serves only if it
gives the original's probabilities within `MAX_DELTA` on sample rows: real rows when there are any,
plus rows that sit on, just below and just above every split threshold of the graph, with NaN mixed in.
Otherwise the original serves and the reason is logged.
A serving process never converts itself: `served_form` runs the conversion in a sandboxed child
(sandbox.py) with a timeout and a memory limit, and keeps only the verified graph bytes.

Lanes score float32 rows. LightGBM and HistGradientBoosting compare against float64 thresholds, which
ONNX rounds to the nearest float32; rounding each threshold *down* first keeps every float32 input on
the same side of every split, so the compiled graph agrees with the original on all rows it will see.
sklearn's trees compare float32 inputs with float64 thresholds: their graph keeps the thresholds in
double, and sends a missing value down the side each node chose at fit time, as sklearn does (skl2onnx
leaves that out: a RandomForest trained on rows with NaN failed verification so). A graph from
skl2onnx that misses the check with float32 sums is converted once more in double.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog

from coinfleet.db.sql import query
from coinfleet.models.convert import TARGET_OPSET, CompileError, convert_estimator, estimator_of
from coinfleet.models.forest_graph import is_sklearn_forest
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
#: synthetic rows that walk the trees, and the share of their values that are NaN
_TREE_ROWS = 768
_NAN_SHARE = 0.1
#: LightGBM's zero threshold, and a bound that keeps sample values finite in float32
_ZERO = float(np.float32(1e-35))
_LARGEST = 1e30
#: TreeEnsemble attributes that hold split features and thresholds
_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


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
    return f"v2/{versions}/opset{TARGET_OPSET['']}-ml{TARGET_OPSET['ai.onnx.ml']}"


def compile_model(
    fmt: str,
    artifact: bytes,
    n_features: int,
    real_rows: FloatArray | None = None,
    *,
    convert: Converter | None = None,
    native: Predictor | None = None,
) -> Served:
    """The verified ONNX form of a model, or the original with the reason; ModelLoadError if it can't load.
    `native`: the artifact already loaded (a 2000-tree forest's skops file takes ~20 s to load)."""
    native = native or load_predictor(fmt, artifact)
    validate_predictor(native, n_features)
    if fmt == "onnx":
        return Served(format=fmt, artifact=artifact, compiled=False, reason="already ONNX")
    if fmt not in COMPILABLE:
        return _native(fmt, artifact, f"no ONNX converter for format {fmt}")
    try:
        estimator = estimator_of(fmt, artifact, native)
        graph = (convert or convert_estimator)(estimator, n_features)
        rows = sample_rows(graph, n_features, real_rows)
        try:
            delta = verify(graph, native, rows)
        except CompileError:
            if convert is not None or is_sklearn_forest(estimator):  # a forest's graph sums in double
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
    from onnx import numpy_helper

    found: list[list[FloatArray]] = [[] for _ in range(n_features)]
    for node in onnx.load_model_from_string(graph).graph.node:
        if node.op_type in _TREE_OPS:
            attrs = {a.name: a for a in node.attribute}
            if "nodes_values_as_tensor" in attrs:  # double thresholds
                values = numpy_helper.to_array(attrs["nodes_values_as_tensor"].t).astype(np.float64)
            else:
                values = np.asarray(attrs["nodes_values"].floats, dtype=np.float64)
            features = np.asarray(attrs["nodes_featureids"].ints, dtype=np.int64)
            split = np.asarray(attrs["nodes_modes"].strings, dtype=object) != b"LEAF"
            for feature in np.unique(features[split]):
                if 0 <= feature < n_features:
                    found[feature].append(values[split & (features == feature)])
    return [
        _neighbours(np.concatenate(v).astype(np.float32) if v else np.empty(0, np.float32)) for v in found
    ]


def _neighbours(thresholds: npt.NDArray[np.float32]) -> FloatArray:
    plain = np.array([-1.0, 0.0, 1.0, 1e3], dtype=np.float64)
    below = np.nextafter(thresholds, np.float32(-np.inf))
    above = np.nextafter(thresholds, np.float32(np.inf))
    values = np.concatenate([below, thresholds, above]).astype(np.float64)
    # LightGBM reads |x| ≤ 1e-35 as exactly 0 (its zero threshold); features never hold such values
    values[np.abs(values) <= _ZERO] = 0.0
    kept = np.unique(values[np.abs(values) < _LARGEST])
    # a feature split only at infinite or float32-overflowing thresholds (a LightGBM model trained on a
    # recorded day splits volume_spike_10 at +inf) leaves nothing to sample: plain values stand in
    return kept if len(kept) else plain


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
