"""Where a benchmark's CPU went, by part: the lanes' process, its runners, the ingester, the HTTP
process and its manual-scoring child, the clients, PostgreSQL's backends by application, and the rest
of the machine.

Read from /proc (Linux; elsewhere there is nothing to report) at a phase's start and end: each part's
CPU seconds over the phase's wall seconds, i.e. the cores it kept busy. Parts are told apart by the
names the processes give themselves (`db.priority.name_process`); a PostgreSQL backend by the
application name of its session, and only when the server runs on this machine.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from coinfleet.bench.machine import CpuTimes

PROC = Path("/proc")
#: process names (as set by the processes themselves) → part
NAMED_PARTS = {
    "coinfleet-http": "HTTP process",
    "coinfleet-score": "manual scoring child",
    "cf-bench-rest": "API clients: REST + MCP (bench)",
    "cf-bench-sse": "API clients: stream (bench)",
    "cf-bench-feed": "ingester (bench)",
}
LANES = "lanes' process"
RUNNERS = "runners"
HELPERS = "other children (fork server, …)"
REST = "rest of the machine"
#: a backend whose session gave no application name: the lanes' pools and the ingester
UNNAMED_BACKEND = "lanes + ingester"
#: PostgreSQL backends of this database by pid → their session's application name
Backends = Callable[[], Awaitable[Mapping[int, str]]]


@dataclass(frozen=True)
class Reading:
    """CPU ticks by part at one moment, and the machine's total busy ticks."""

    at: float
    ticks: Mapping[str, int]
    busy: int | None


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, name, user + system ticks) of a process, None when gone or unreadable."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), name, int(fields[11]) + int(fields[12])


def processes() -> dict[int, tuple[int, str, int]]:
    """Every visible process: pid → (parent pid, name, CPU ticks)."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def classify(
    root: int, procs: Mapping[int, tuple[int, str, int]], backends: Mapping[int, str]
) -> dict[int, str]:
    """The part of each process of `root`'s tree and of each known backend."""
    parts: dict[int, str] = {pid: f"postgres: {app or UNNAMED_BACKEND}" for pid, app in backends.items()}
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _, _) in procs.items():
        children[parent].append(pid)

    def walk(pid: int, inherited: str | None, depth: int) -> None:
        name = procs[pid][1]
        if pid == root:
            part = LANES
        elif name in NAMED_PARTS:
            part = NAMED_PARTS[name]
        elif inherited is not None:
            part = inherited
        else:  # unnamed: the fork server and resource tracker, or the fork server's runners
            part = HELPERS if depth == 1 else RUNNERS
        parts[pid] = part
        for child in children.get(pid, []):
            walk(child, None if part in (LANES, HELPERS) else part, depth + 1)

    if root in procs:
        walk(root, None, 0)
    return parts


async def read(root: int, backends: Backends) -> Reading | None:
    """CPU ticks by part now; None where there is no /proc."""
    return await asyncio.to_thread(reading, root, await backends())


def reading(root: int, known: Mapping[int, str]) -> Reading | None:
    """CPU ticks by part now, given the backends; None where there is no /proc."""
    if not PROC.is_dir():
        return None
    procs = processes()
    ticks: dict[str, int] = defaultdict(int)
    for pid, part in classify(root, procs, known).items():
        if pid in procs:
            ticks[part] += procs[pid][2]
    machine = CpuTimes.read()
    return Reading(at=time.monotonic(), ticks=dict(ticks), busy=None if machine is None else machine.busy)


def cores(start: Reading | None, end: Reading | None) -> dict[str, float]:
    """Cores each part kept busy between two readings, most first; `rest of the machine` is every
    other process (the machine's busy time less the parts')."""
    if start is None or end is None or end.at <= start.at:
        return {}
    hz = os.sysconf("SC_CLK_TCK")
    wall = end.at - start.at
    used = {part: max(0, end.ticks[part] - start.ticks.get(part, 0)) for part in end.ticks}
    if start.busy is not None and end.busy is not None:
        used[REST] = max(0, end.busy - start.busy - sum(used.values()))
    shares = {part: round(ticks / hz / wall, 2) for part, ticks in used.items()}
    return dict(sorted(((p, c) for p, c in shares.items() if c > 0), key=lambda item: -item[1]))
