"""The machine figures under every benchmark: /proc/stat read right, shares computed right."""

from __future__ import annotations

import os
import time

import pytest

from coinfleet.bench.machine import PROC_STAT, CpuTimes, MachineWatch, describe, shares

# the first lines of /proc/stat on a 2-vCPU machine (made-up counts): user nice system idle iowait irq
# softirq steal guest guest_nice
STAT = """cpu  1000 20 300 5000 80 7 13 40 0 0
cpu0 500 10 150 2500 40 3 7 20 0 0
cpu1 500 10 150 2500 40 4 6 20 0 0
intr 12345
"""


def test_the_total_line_is_split_into_busy_idle_and_steal() -> None:
    times = CpuTimes.parse(STAT)
    assert times == CpuTimes(busy=1000 + 20 + 300 + 7 + 13, idle=5000 + 80, steal=40)


@pytest.mark.parametrize("text", ["", "cpu0 1 2 3 4 5 6 7 8", "cpu  1 2 3", "intr 1 2 3 4 5 6 7 8 9"])
def test_text_without_a_total_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a /proc/stat total line"):
        CpuTimes.parse(text)


def test_shares_are_percent_of_the_time_between_two_readings() -> None:
    start = CpuTimes(busy=100, idle=100, steal=0)
    end = CpuTimes(busy=100 + 60, idle=100 + 30, steal=10)
    assert shares(start, end) == {"busy_percent": 60.0, "steal_percent": 10.0}
    assert shares(end, end) is None  # no time passed: no share to speak of


def test_a_watch_reports_the_loop_and_this_machines_cpu_shares() -> None:
    watch = MachineWatch(iterations=100_000)
    # work between the readings, long enough for /proc/stat's clock ticks (10 ms) to see it
    worked_until = time.process_time() + 0.05
    while time.process_time() < worked_until:
        pass
    machine = watch.report()
    assert machine["cores"] == os.cpu_count()
    assert machine["loop_iterations"] == 100_000
    assert machine["loop_seconds"] > 0
    if not PROC_STAT.exists():
        pytest.skip("no /proc/stat here: the CPU shares are left out")
    assert 0 <= machine["steal_percent"] <= 100
    assert 0 < machine["busy_percent"] <= 100


def test_the_line_under_the_table_names_every_figure_it_has() -> None:
    loop_only = {"cores": 2, "loop_iterations": 10_000_000, "loop_seconds": 0.374}
    assert describe(loop_only) == "machine: 2 cores, 10,000,000 empty loop iterations in 0.37 s"
    full = describe({**loop_only, "busy_percent": 63.2, "steal_percent": 1.3})
    assert full.endswith(
        "during the run the CPUs were 63 % busy and the host took 1.3 % of their time (steal)"
    )
