"""Hogging runner processes stand still while quick lanes work, and never for long (the hog policy)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from coinfleet.runners.child import LoaderSpec
from coinfleet.runners.hogs import HogGate, HogPolicy
from coinfleet.runners.process import ProcessRunner, RunnerLimits


def _state(pid: int) -> str:
    """The process state letter from /proc: T when stopped."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def burner() -> Iterator[int]:
    """A process that burns CPU, like a hogging runner."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


async def test_a_hog_stands_still_during_quick_work_and_runs_after(burner: int) -> None:
    gate = HogGate(quick_seconds=60)
    gate.add(burner)
    with gate.quick_work():
        await _until(lambda: _state(burner) == "T")
    await _until(lambda: _state(burner) != "T")
    assert gate.stopped_seconds() > 0


async def test_a_hog_is_never_stopped_longer_than_its_budget(burner: int) -> None:
    gate = HogGate(max_stop=0.2, quick_seconds=60)
    gate.add(burner)
    with gate.quick_work():
        await _until(lambda: _state(burner) == "T")
        await _until(lambda: _state(burner) != "T")  # the budget ran out while quick work went on
        with gate.quick_work():  # more quick work right away: the budget is spent, the hog runs
            await asyncio.sleep(0.05)
            assert _state(burner) != "T"


async def test_quick_work_that_hangs_stops_holding_hogs(burner: int) -> None:
    gate = HogGate(quick_seconds=0.1)
    gate.add(burner)
    with gate.quick_work():  # a lane whose runner call hangs
        await _until(lambda: _state(burner) == "T")
        await _until(lambda: _state(burner) != "T")


async def test_a_hog_that_turns_quick_or_leaves_runs_at_once(burner: int) -> None:
    gate = HogGate(quick_seconds=60)
    gate.add(burner)
    with gate.quick_work():
        await _until(lambda: _state(burner) == "T")
        gate.discard(burner)
        await _until(lambda: _state(burner) != "T")
        gate.add(burner)  # hogging again while quick work is in flight: stopped at once
        await _until(lambda: _state(burner) == "T")
        gate.release()
        await _until(lambda: _state(burner) != "T")


async def test_a_runner_that_hogs_from_its_first_batch_stands_still_during_quick_work() -> None:
    gate = HogGate(quick_seconds=60)
    hogs = HogPolicy(gate)
    runner = ProcessRunner(
        LoaderSpec(function="coinfleet.bench.faulty:load_slow"),
        name="slow",
        limits=RunnerLimits(timeout_seconds=60, memory_limit_mb=1024),
        hogs=hogs,
    )
    try:
        await runner.predict(np.zeros((1, 3), dtype=np.float32))  # 50 ms of CPU: a hog at once
        assert hogs.hogging(runner) and runner.pid is not None
        pid = runner.pid
        batch = asyncio.create_task(runner.predict(np.zeros((40, 3), dtype=np.float32)))  # 2 s of CPU
        await asyncio.sleep(0.05)
        with gate.quick_work():
            await _until(lambda: _state(pid) == "T")
        await _until(lambda: _state(pid) != "T")
        assert len(await batch) == 40
    finally:
        await runner.close()


async def test_a_large_batch_for_a_stopped_hog_leaves_the_event_loop_running() -> None:
    """A batch larger than any socket buffer, sent to a child that the gate keeps stopped, waits for
    the child without blocking the event loop (a blocked loop could never let the child go on)."""
    gate = HogGate(quick_seconds=0.3)
    runner = ProcessRunner(
        LoaderSpec(function="coinfleet.bench.faulty:load_costly", args=(0.0,)),
        name="big",
        limits=RunnerLimits(timeout_seconds=30, memory_limit_mb=1024),
        hogs=HogPolicy(gate),
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        await runner.start()
        assert runner.pid is not None
        pid = runner.pid
        gate.add(pid)  # as if its last batch had hogged a core
        rows = 400_000  # 6.4 MB of features, a 3.2 MB answer
        with gate.quick_work():
            await _until(lambda: _state(pid) == "T")
            started = ticks
            answer = await runner.predict(np.zeros((rows, 4), dtype=np.float32))
        assert len(answer) == rows
        assert ticks - started >= 10  # the loop ran while the child stood still (0.3 s)
    finally:
        ticker.cancel()
        gate.release()
        await runner.close()


@pytest.mark.parametrize(
    ("seconds_per_row", "rows", "hog"),
    [(0.0002, 250, False), (0.003, 15, True)],  # both burn ~45 ms: cheap rows in bulk vs costly rows
)
async def test_a_hog_is_a_model_costly_per_row_not_a_large_batch(
    seconds_per_row: float, rows: int, hog: bool
) -> None:
    hogs = HogPolicy()
    runner = ProcessRunner(
        LoaderSpec(function="coinfleet.bench.faulty:load_costly", args=(seconds_per_row,)),
        name="costly",
        limits=RunnerLimits(timeout_seconds=30, memory_limit_mb=1024),
        hogs=hogs,
    )
    try:
        await runner.predict(np.zeros((rows, 3), dtype=np.float32))
        assert hogs.hogging(runner) is hog
    finally:
        await runner.close()
