"""Importing bare model files from outside: every format, trusted pickles, and every kind of bad file.

Each import checks the file in a sandboxed child process; a refused file leaves the registry unchanged.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import asyncpg
import joblib
import numpy as np
import numpy.typing as npt
import pytest

from coinfleet.errors import ModelLoadError
from coinfleet.models import registry
from coinfleet.models.compile import recipe
from coinfleet.models.formats import load_predictor
from coinfleet.models.importing import ImportRequest, import_file
from coinfleet.models.metadata import ModelMeta, parse_target_text
from coinfleet.models.sandbox import SandboxError, SandboxLimits

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
FloatArray = npt.NDArray[np.float64]
FEATURES = ("price_change_1", "price_change_5", "price_change_10", "volume_sum_5", "volatility_10")
TARGET = parse_target_text("up 10% in 5m")
LIMITS = SandboxLimits(timeout_seconds=90, memory_limit_mb=1024)


@pytest.fixture(scope="module")
def data() -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """A small binary problem with missing values, on coinfleet's feature names."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, len(FEATURES)))
    y = ((x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, 400)) > 0).astype(np.int64)
    x[::9, 2] = np.nan
    return x, y


def _rows(data: tuple[FloatArray, Any]) -> FloatArray:
    # the float32 values a lane sends
    return data[0][:100].astype(np.float32).astype(np.float64)


def _forest(data: tuple[FloatArray, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0, n_jobs=1).fit(*data)


def _xgb(data: tuple[FloatArray, Any]) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(*data)


def _lgbm(data: tuple[FloatArray, Any]) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, n_jobs=1).fit(*data)


def _joblib(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def _file(kind: str, data: tuple[FloatArray, Any]) -> tuple[str, bytes, Any]:
    """(file name, bytes, the fitted model whose predict_proba is the reference)."""
    import skops.io
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    if kind == "xgboost-json":
        model = _xgb(data)
        return "m.json", bytes(model.get_booster().save_raw("json")), model
    if kind == "xgboost-ubj":
        model = _xgb(data)
        return "m.ubj", bytes(model.get_booster().save_raw("ubj")), model
    if kind == "lightgbm-text":
        model = _lgbm(data)
        return "m.txt", str(model.booster_.model_to_string()).encode(), model
    if kind == "skops":
        model = _forest(data)
        return "m.skops", skops.io.dumps(model), model
    if kind == "onnx":
        model = _forest(data)
        graph = convert_sklearn(
            model,
            initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": 18, "ai.onnx.ml": 3},
        )
        return "m.onnx", graph.SerializeToString(), model
    model = _forest(data) if kind == "pickle-forest" else _xgb(data)
    return "m.joblib", _joblib(model), model


def _library_proba(kind: str, model: Any, content: bytes, rows: FloatArray) -> FloatArray:
    """P(class 1) from the file's own library: onnxruntime for an ONNX file, the estimator otherwise."""
    if kind != "onnx":
        return np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)
    import onnxruntime

    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    (proba,) = session.run(["probabilities"], {"input": rows.astype(np.float32)})
    return np.asarray(proba[:, 1], dtype=np.float64)


async def _import(
    conn: asyncpg.Connection, filename: str, content: bytes, *, trusted: bool = False, **meta: Any
) -> registry.ModelRecord:
    fields: dict[str, Any] = {"features": FEATURES, "target": TARGET, "name": "m", **meta}
    request = ImportRequest(data=content, filename=filename, meta=ModelMeta(**fields), trusted=trusted)
    return await import_file(conn, request, limits=LIMITS)


async def _count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM coinfleet_models"))


KINDS = ["xgboost-json", "xgboost-ubj", "lightgbm-text", "skops", "onnx", "pickle-forest", "pickle-xgboost"]


@pytest.mark.parametrize("kind", KINDS)
async def test_each_format_predicts_what_its_library_predicts(
    pool: asyncpg.Pool, data: tuple[FloatArray, Any], kind: str
) -> None:
    filename, content, model = _file(kind, data)
    rows = _rows(data)
    expected = _library_proba(kind, model, content, rows)
    async with pool.acquire() as conn:
        record = await _import(conn, filename, content, trusted=kind.startswith("pickle"))
        stored = await registry.load_artifact(conn, record.id)
        compiled = await conn.fetchval(
            "SELECT onnx FROM coinfleet_compiled WHERE artifact_sha256 = $1 AND recipe = $2",
            record.artifact_sha256,
            recipe(),
        )
    native = load_predictor(record.format, stored).predict_proba(rows)
    assert np.max(np.abs(native - expected)) <= 1e-5
    if compiled is not None:  # the form that will serve
        assert np.max(np.abs(load_predictor("onnx", compiled).predict_proba(rows) - expected)) <= 1e-5
    assert record.features == FEATURES and record.status == "inactive"
    assert record.source["format"] == ("pickle" if kind.startswith("pickle") else record.format)
    assert record.format != "pickle"  # a trusted pickle is stored in a format that runs no code


async def test_a_trusted_pickle_records_its_hash_and_is_stored_converted(
    pool: asyncpg.Pool, data: tuple[FloatArray, Any]
) -> None:
    import hashlib

    _, content, _ = _file("pickle-forest", data)
    async with pool.acquire() as conn:
        record = await _import(conn, "rf.pkl", content, trusted=True)
    assert record.source["sha256"] == hashlib.sha256(content).hexdigest()
    assert record.source["trusted"] is True and record.format == "skops"
    assert record.algorithm == "random_forest"


class _Evil:
    """Unpickling this writes a file: the side effect a refused pickle must never have."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


async def test_a_pickle_is_refused_without_trust_and_its_code_never_runs(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    content = pickle.dumps(_Evil(marker), protocol=4)
    async with pool.acquire() as conn:
        for filename in ("model.pkl", "model.json", "model.bin"):
            with pytest.raises(ModelLoadError, match="--trust"):
                await _import(conn, filename, content)
        assert await _count(conn) == 0
    assert not marker.exists()


def _bad_files(data: tuple[FloatArray, Any]) -> dict[str, tuple[str, bytes, str]]:
    """name → (file name, bytes, what the error must say)."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    _, xgb, _ = _file("xgboost-json", data)
    _, skops_file, _ = _file("skops", data)
    one_class = RandomForestClassifier(n_estimators=3, random_state=0).fit(data[0], np.zeros(len(data[0])))
    return {
        "empty": ("m.json", b"", "empty"),
        "garbage": ("m.json", b"{garbage, not a model", "not a valid xgboost-json"),
        "truncated-xgboost": ("m.json", xgb[: len(xgb) // 2], "not a valid xgboost-json"),
        "truncated-skops": ("m.skops", skops_file[: len(skops_file) // 2], "not a valid skops"),
        "single-class": ("m.skops", skops.io.dumps(one_class), "0/1 classifier"),
        "nan": ("m.onnx", _nan_graph(), "non-finite"),
    }


def _nan_graph() -> bytes:
    """An ONNX classifier whose probabilities are sqrt(-|x|): NaN for every non-zero input."""
    from onnx import TensorProto, helper

    n = len(FEATURES)
    nodes = [
        helper.make_node("Abs", ["input"], ["a"]),
        helper.make_node("Neg", ["a"], ["b"]),
        helper.make_node("Sqrt", ["b"], ["c"]),
        helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["probabilities"]),
    ]
    inits = [
        helper.make_tensor(k, TensorProto.INT64, [1], [v])
        for k, v in (("starts", 0), ("ends", 2), ("axes", 1))
    ]
    graph = helper.make_graph(
        nodes,
        "nan",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        inits,
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString())


@pytest.mark.parametrize(
    "case", ["empty", "garbage", "truncated-xgboost", "truncated-skops", "single-class", "nan"]
)
async def test_a_bad_file_is_refused_with_a_clear_error_and_nothing_changes(
    pool: asyncpg.Pool, data: tuple[FloatArray, Any], case: str
) -> None:
    filename, content, says = _bad_files(data)[case]
    async with pool.acquire() as conn:
        with pytest.raises(ModelLoadError, match=says):
            await _import(conn, filename, content)
        assert await _count(conn) == 0
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_compiled") == 0


async def test_a_wrong_feature_count_and_an_unknown_feature_are_named(
    pool: asyncpg.Pool, data: tuple[FloatArray, Any]
) -> None:
    _, content, _ = _file("xgboost-json", data)
    async with pool.acquire() as conn:
        with pytest.raises(ModelLoadError, match="expects 5 features but its feature list names 3"):
            await _import(conn, "m.json", content, features=FEATURES[:3])
        with pytest.raises(ModelLoadError, match="'volume_of_moon'"):
            await _import(conn, "m.json", content, features=(*FEATURES[:4], "volume_of_moon"))
        assert await _count(conn) == 0


async def test_feature_names_come_from_the_file_and_must_match_the_metadata(
    pool: asyncpg.Pool, data: tuple[FloatArray, Any]
) -> None:
    model = _forest(data)
    model.feature_names_in_ = np.array(FEATURES, dtype=object)  # what fitting on a DataFrame records
    content = _joblib(model)
    async with pool.acquire() as conn:
        with pytest.raises(ModelLoadError, match="in the order it was trained with"):
            await _import(conn, "m.pkl", content, trusted=True, features=tuple(reversed(FEATURES)))
        record = await _import(conn, "m.pkl", content, trusted=True, features=None)
    assert record.features == FEATURES


def _hanging(seconds: int) -> bytes:
    class Sleeper:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, (f"import time; time.sleep({seconds})",))

    return pickle.dumps(Sleeper(), protocol=4)


def _hungry() -> bytes:
    class Hungry:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, ("blocks = []\nwhile True: blocks.append(bytearray(2**26))",))

    return pickle.dumps(Hungry(), protocol=4)


async def test_a_file_that_hangs_or_eats_memory_is_refused_after_its_limits(pool: asyncpg.Pool) -> None:
    quick = SandboxLimits(timeout_seconds=15, memory_limit_mb=256)
    async with pool.acquire() as conn:
        for content, reason in ((_hanging(600), "timeout"), (_hungry(), "memory")):
            request = ImportRequest(
                data=content, filename="m.pkl", meta=ModelMeta(features=FEATURES, target=TARGET), trusted=True
            )
            with pytest.raises(SandboxError) as refused:
                await import_file(conn, request, limits=quick)
            assert refused.value.reason == reason
        assert await _count(conn) == 0


#: code that finds the child's answer pipe: the lowest pipe (a socket under uvloop) that is neither its
#: stdin nor its stderr (it is duplicated first thing)
_ANSWER_PIPE = """
import os
own = {os.readlink('/proc/self/fd/0'), os.readlink('/proc/self/fd/2')}
candidates = []
for fd in os.listdir('/proc/self/fd'):
    try:
        link = os.readlink('/proc/self/fd/' + fd)
    except OSError:
        continue
    if link.startswith(('pipe:', 'socket:')) and link not in own:
        candidates.append(int(fd))
pipes = [min(candidates)]
"""


def _printing(code: str) -> bytes:
    class Printer:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, (code,))

    return pickle.dumps(Printer(), protocol=4)


async def test_a_file_that_prints_without_end_costs_the_caller_no_memory(pool: asyncpg.Pool) -> None:
    import resource

    # a child needs seconds to import its libraries on a busy machine: no case waits for the deadline
    limits = SandboxLimits(timeout_seconds=300, memory_limit_mb=256)
    block = "block = b'x' * 2**20\n"
    cases = {
        # 512 MB on stderr (twice its memory limit), then it dies: only the tail of what it printed is kept
        "crash": block + "import os\nfor _ in range(512): os.write(2, block)\nos._exit(3)",
        # more than its memory limit as its "answer": cut off there, the child killed
        "memory": _ANSWER_PIPE + block + "while True:\n    for fd in pipes: os.write(fd, block)",
    }
    async with pool.acquire() as conn:
        for reason, code in cases.items():
            request = ImportRequest(
                data=_printing(code),
                filename="m.pkl",
                meta=ModelMeta(features=FEATURES, target=TARGET),
                trusted=True,
            )
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with pytest.raises(SandboxError) as refused:
                await import_file(conn, request, limits=limits)
            assert refused.value.reason == reason
            assert len(str(refused.value)) < 1200  # the last lines it printed, cut short
            grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
            # what it printed is not kept; an answer is read up to the child's memory limit, no further
            assert grown_mb < (100 if reason == "crash" else 256 + 100), (
                f"{reason}: the caller grew {grown_mb:.0f} MB"
            )
        assert await _count(conn) == 0


async def test_predecessor_metadata_field_names_are_read_as_they_are(
    pool: asyncpg.Pool, data: tuple[FloatArray, Any], tmp_path: Path
) -> None:
    from coinfleet.models.metadata import read_sidecar

    sidecar = tmp_path / "m.joblib.meta.json"
    sidecar.write_text(
        json.dumps(
            {
                "model_name": "Pump Finder v2",
                "model_type": "xgboost",
                "features": list(FEATURES),
                "phases": [1, 2],
                "target_variable": "price_close",
                "future_minutes": 10,
                "price_change_percent": 5.0,
                "target_direction": "up",
                "training_accuracy": 0.71,
                "roc_auc": 0.66,
                "alert_threshold": 0.8,
            }
        )
    )
    meta = read_sidecar(sidecar)
    _, content, _ = _file("pickle-xgboost", data)
    async with pool.acquire() as conn:
        request = ImportRequest(data=content, filename="m.joblib", meta=meta, trusted=True)
        record = await import_file(conn, request, limits=LIMITS)
    assert record.name == "Pump-Finder-v2"
    assert record.target.describe() == "up 5% in 600s"
    assert record.settings.phases == [1, 2] and record.settings.alert_threshold == 0.8
    assert record.training_metrics["roc_auc"] == 0.66
