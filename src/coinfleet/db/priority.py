"""Operator traffic below scoring: the processes that serve operators (the HTTP side, manual scoring)
run at nice 19, below the runners' models (10) and the lanes (0), and their database sessions plan no
parallel workers.

The PostgreSQL backends of the API's sessions are left at the server's priority: reniced, one
preempted while holding a lock on the pages the lanes write to (the newest predictions, which the
API's lists read) made the lanes wait for it — `bench api` was worse with them reniced; and SCHED_IDLE
for the HTTP side starved the live stream (docs/decisions.md). A parallel worker would be a new
backend beside the lanes, so there are none.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")
#: niceness of operator traffic's processes: below the runner children that compute the models
#: (nice 10), far below the lanes' own process (0)
OPERATOR_NICENESS = 19
#: the session settings of connections for operator traffic: no parallel workers (each would be a new
#: server process at the server's priority, beside the lanes, on the cores they need)
OPERATOR_SERVER_SETTINGS = {"max_parallel_workers_per_gather": "0"}


def lower_process(niceness: int = OPERATOR_NICENESS) -> None:
    """This process to at least `niceness` (a process already lower stays where it is; children inherit
    it). Best effort: where not allowed, unchanged."""
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)


def name_process(name: str) -> None:
    """Show `name` (at most 15 characters) as this process's name in ps and top (Linux; else nothing)."""
    with contextlib.suppress(OSError):
        (PROC / "self" / "comm").write_text(name[:15])
