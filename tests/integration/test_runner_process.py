"""A runner process survives its model crashing, hanging or eating memory: only its child is replaced.

The loaders below run in the runner's child process, which imports this module by name.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from coinfleet.models.bundle import ModelBundle
from coinfleet.models.compile import compile_model
from coinfleet.models.dataset import build_dataset
from coinfleet.models.formats import Predictor
from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.process import ProcessRunner, RunnerLimits
from coinfleet.runners.protocol import InlineRunner, RunnerError
from support import market_rows

FloatArray = npt.NDArray[np.float64]
HERE = str(Path(__file__).parent)
#: far past what a batch here takes on a busy machine, where a runner child (at nice 10) gets a few percent
#: of a core: a model that crashes or grows must fail for that, not for a deadline that came first
LIMITS = RunnerLimits(timeout_seconds=60.0, memory_limit_mb=300)
#: for the batch that hangs: nothing else meets a deadline, so it may be short
HANG_LIMITS = replace(LIMITS, timeout_seconds=1.0)
#: what the faulty model does when the first value of a batch is this
CRASH, HANG, GROW, RAISE = 1.0, 2.0, 3.0, 4.0
#: packages whose native libraries a serving child must not load
TRAINING_LIBRARIES = ("/sklearn/", "/scipy/", "/xgboost/", "/lightgbm/", "/asyncpg/")


class FaultyModel:
    """Answers 0.25 per row, unless the batch's first value asks it to fail in some way."""

    n_features = None

    def __init__(self) -> None:
        self._hoard: list[npt.NDArray[np.float64]] = []

    def predict_proba(self, x: FloatArray) -> FloatArray:
        first = float(x[0, 0])
        if first == CRASH:
            os.abort()
        if first == HANG:
            time.sleep(3600)
        while first == GROW:
            self._hoard.append(np.ones(2**20))  # 8 MB more each round
            time.sleep(0.001)
        if first == RAISE:
            raise ArithmeticError("the model divided by zero")
        return np.full(len(x), 0.25)


def faulty_loader() -> Predictor:
    """Runs in the child."""
    return FaultyModel()


def batch(first: float, rows: int = 3) -> npt.NDArray[np.float32]:
    features = np.zeros((rows, 4), dtype=np.float32)
    features[0, 0] = first
    return features


async def expect_failure(runner: ProcessRunner, first: float, reason: str) -> None:
    runner.set_limits(HANG_LIMITS if first == HANG else LIMITS)
    try:
        with pytest.raises(RunnerError) as caught:
            await runner.predict(batch(first))
    finally:
        runner.set_limits(LIMITS)
    assert caught.value.reason == reason


async def test_only_the_failing_child_is_replaced() -> None:
    faulty = ProcessRunner(
        LoaderSpec(function=f"{__name__}:faulty_loader", sys_path=(HERE,)), name="f", limits=LIMITS
    )
    neighbour = ProcessRunner(
        LoaderSpec(function=f"{__name__}:faulty_loader", sys_path=(HERE,)), name="n", limits=LIMITS
    )
    await faulty.start()
    await neighbour.start()
    neighbour_pid = neighbour.pid
    try:
        for first, reason in ((CRASH, "crash"), (HANG, "timeout"), (GROW, "memory")):
            pid = faulty.pid
            await expect_failure(faulty, first, reason)
            assert faulty.pid is None  # killed, not waited for
            assert (await neighbour.predict(batch(0.0, rows=2))).tolist() == [0.25, 0.25]
            assert (await faulty.predict(batch(0.0))).tolist() == [0.25] * 3  # a new child
            assert faulty.pid != pid
        await expect_failure(faulty, RAISE, "ArithmeticError")
        assert faulty.starts == 4  # a model's own exception keeps its child
        assert neighbour.pid == neighbour_pid and neighbour.starts == 1
    finally:
        await faulty.close()
        await neighbour.close()


async def test_a_model_that_cannot_load_fails_at_start() -> None:
    runner = ProcessRunner(
        LoaderSpec.for_artifact("xgboost-json", b"{not a model"), name="bad", limits=LIMITS
    )
    with pytest.raises(RunnerError) as caught:
        await runner.start()
    assert caught.value.reason == "load"
    assert "not a valid xgboost-json model" in str(caught.value)


@pytest.fixture(scope="module")
def real_rows(small_bundle: ModelBundle) -> FloatArray:
    data = build_dataset(
        market_rows(coins=10, seconds=600, seed=5),
        target=small_bundle.target,
        features=small_bundle.features,
        label_mode="within",
    )
    rows: FloatArray = data.x
    return rows


async def test_the_compiled_model_serves_the_native_probabilities(
    small_bundle: ModelBundle, real_rows: FloatArray
) -> None:
    served = compile_model(small_bundle.format, small_bundle.artifact, len(small_bundle.features))
    assert served.compiled
    runner = ProcessRunner(
        LoaderSpec.for_artifact(served.format, served.artifact), name="onnx", limits=LIMITS
    )
    native = InlineRunner.from_artifact(small_bundle.format, small_bundle.artifact)
    features = real_rows.astype(np.float32)
    try:
        for rows in (features[:1], features):
            onnx_p, native_p = await runner.predict(rows), await native.predict(rows)
            assert onnx_p.dtype == np.float64 and onnx_p.shape == (len(rows),)
            assert np.max(np.abs(onnx_p - native_p)) <= 1e-5
    finally:
        await runner.close()


async def test_a_serving_child_loads_no_training_library(small_bundle: ModelBundle) -> None:
    served = compile_model(small_bundle.format, small_bundle.artifact, len(small_bundle.features))
    runner = ProcessRunner(LoaderSpec.for_artifact("onnx", served.artifact), name="lean", limits=LIMITS)
    try:
        await runner.predict(np.zeros((1, len(small_bundle.features)), np.float32))
        # every native library the child loaded
        mapped = await asyncio.to_thread(Path(f"/proc/{runner.pid}/maps").read_text)
    finally:
        await runner.close()
    assert "/onnxruntime/" in mapped
    assert not [name for name in TRAINING_LIBRARIES if name in mapped]


MAIN_SCRIPT = """
import asyncio, resource
with open({marker!r}, "a") as runs:
    runs.write(__name__ + "\\n")
from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.process import ProcessRunner, RunnerLimits

async def main():
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))  # core dumps on, as a developer may have them
    for i in range(3):
        runner = ProcessRunner(
            LoaderSpec(function="coinfleet.bench.faulty:load_crashing"),
            name=f"r{{i}}",
            limits=RunnerLimits(timeout_seconds=5, memory_limit_mb=1000),
        )
        await runner.start()
        with open(f"/proc/{{runner.pid}}/limits") as limits:
            core = next(line for line in limits if line.startswith("Max core file size"))
        print("core", core.split()[4], flush=True)
        await runner.close()

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_runner_children_start_cheap_and_write_no_core_files(tmp_path: Path) -> None:
    """multiprocessing runs the parent's main script again in each child unless its fork server has
    imported it; the runners' fork server does, once, so a start costs a fork, not the main's imports.
    A child that crashes again and again writes no core file each time, even where core dumps are on."""
    marker = tmp_path / "runs"
    script = tmp_path / "main.py"
    script.write_text(MAIN_SCRIPT.format(marker=str(marker)))
    done = subprocess.run(
        [sys.executable, str(script)], check=True, timeout=120, capture_output=True, text=True
    )
    assert marker.read_text().split() == ["__main__", "__mp_main__"]  # the parent, the fork server
    assert [line for line in done.stdout.splitlines() if line.startswith("core")] == ["core 0"] * 3


async def test_a_runner_expects_the_cost_per_row_of_its_last_batch() -> None:
    runner = ProcessRunner(
        LoaderSpec(function="coinfleet.bench.faulty:load_costly", args=(0.005,)), name="costly", limits=LIMITS
    )
    try:
        assert runner.expected_cpu_seconds(4) is None  # nothing measured yet
        await runner.predict(np.zeros((4, 3), np.float32))
        expected = runner.expected_cpu_seconds(8)
    finally:
        await runner.close()
    assert expected is not None and 0.04 - 0.005 <= expected < 0.2  # 5 ms of CPU per row, twice the rows
