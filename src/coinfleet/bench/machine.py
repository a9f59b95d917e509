"""What the machine was like during a benchmark: how fast it ran Python, how busy its CPUs were, and
how much CPU time the host took away (steal).

Machines of one kind differ a lot between sessions and drift within an hour (docs/benchmarks.md), so a
run's absolute numbers mean little without these. Ratios measured in the same run are fairer to
compare. The CPU figures come from Linux's /proc/stat and are left out on other systems.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOP_ITERATIONS = 10_000_000  #: the empty loop that docs/benchmarks.md uses to compare machines
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuTimes:
    """All CPUs' time since boot from /proc/stat, in clock ticks."""

    busy: int  #: user, nice, system, irq, softirq (guest time is counted in user)
    idle: int  #: idle and waiting for I/O
    steal: int  #: time the host ran something else while a vCPU wanted to run

    @classmethod
    def parse(cls, stat: str) -> CpuTimes:
        """The totals from /proc/stat's text (its first line, `cpu  user nice system idle iowait irq
        softirq steal …`)."""
        fields = stat.split("\n", 1)[0].split()
        if not fields or fields[0] != "cpu" or len(fields) < 9:
            raise ValueError(f"not a /proc/stat total line: {fields[:3]}")
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return cls(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)

    @classmethod
    def read(cls) -> CpuTimes | None:
        """Now, or None where there is no /proc/stat."""
        try:
            return cls.parse(PROC_STAT.read_text())
        except (OSError, ValueError):
            return None


def shares(start: CpuTimes, end: CpuTimes) -> dict[str, float] | None:
    """Percent of the CPUs' time between two readings that was busy and that was stolen."""
    busy, idle, steal = end.busy - start.busy, end.idle - start.idle, end.steal - start.steal
    total = busy + idle + steal
    if total <= 0:
        return None
    return {"busy_percent": round(100 * busy / total, 1), "steal_percent": round(100 * steal / total, 1)}


def loop_seconds(iterations: int = LOOP_ITERATIONS) -> float:
    """Seconds this machine takes for an empty Python loop."""
    started = time.perf_counter()
    for _ in range(iterations):
        pass
    return time.perf_counter() - started


class MachineWatch:
    """Times the empty loop when made, then reports it with the CPUs' shares since."""

    def __init__(self, iterations: int = LOOP_ITERATIONS) -> None:
        self._iterations = iterations
        self._loop_seconds = loop_seconds(iterations)
        self._start = CpuTimes.read()

    def report(self) -> dict[str, Any]:
        """The machine's figures for the run (JSON-ready)."""
        machine: dict[str, Any] = {
            "cores": os.cpu_count(),
            "loop_iterations": self._iterations,
            "loop_seconds": round(self._loop_seconds, 3),
        }
        end = CpuTimes.read()
        if self._start is not None and end is not None:
            machine.update(shares(self._start, end) or {})
        return machine


def describe(machine: dict[str, Any]) -> str:
    """One line for under a benchmark's table."""
    text = (
        f"machine: {machine['cores']} cores, {machine['loop_iterations']:,} empty loop iterations in "
        f"{machine['loop_seconds']:.2f} s"
    )
    if "busy_percent" in machine:
        text += (
            f"; during the run the CPUs were {machine['busy_percent']:.0f} % busy and the host took "
            f"{machine['steal_percent']:.1f} % of their time (steal)"
        )
    return text
