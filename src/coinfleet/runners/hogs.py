"""The CPU-hog policy: runner children that burn a core step aside while quick lanes work.

One object, `HogPolicy`, holds the whole policy for a serving process; the process runners use it when
they are given one, and nothing else about a runner knows of it:
- nice levels: a runner child runs at CHILD_NICENESS above the serving process; a hog (a batch of more
  than HOG_BATCH_SECONDS of CPU and HOG_ROW_SECONDS per row) runs as SCHED_IDLE at HOG_NICENESS until
  its batches are cheap again; children load at the lowest priority when the parent may raise them;
- stopping (`HogGate`, below): hogs stand still while a quick lane has a batch in flight;
- deadline stretching: the time a hog stood still does not count against its batch timeout;
- slot accounting: a lane asks `hogging(runner)` and its slot then does not count against quick ones.

Cores that share hardware slow each other: on this project's machine a loop on one vCPU runs 60 % slower
while the other burns (README, benchmarks), and no scheduling class changes that. So a runner child
that hogs a core (its last batch took longer than the slot quantum) is stopped with SIGSTOP while any
quick lane is between claiming its events and committing them, and continued with SIGCONT afterwards.
A floor keeps a hog from starving: it is stopped for at most `max_share` of the time (a budget that
refills at that rate), and the time it spent stopped does not count against its batch timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

#: at most this share of wall time may a hog spend stopped
MAX_STOPPED_SHARE = 0.5
#: the longest a hog is stopped at a stretch (also the budget's cap)
MAX_STOP_SECONDS = 0.5
#: a batch counts as quick work for this long at most (a hanging runner call must not hold hogs)
QUICK_WORK_SECONDS = 0.05
CHILD_NICENESS = 10  #: runner children run at this nice level above the parent
HOG_NICENESS = 19  #: ... and at this one, as SCHED_IDLE, after a batch of more than HOG_BATCH_SECONDS CPU
HOG_BATCH_SECONDS = 0.025
#: ... and of more than this per row: a cheap model's large batch (a backlog, a burst) is not hogging
HOG_ROW_SECONDS = 0.001
#: children load at the lowest priority and rise after a quick batch; only a privileged parent can
#: raise a child again, so an unprivileged one starts them at CHILD_NICENESS and demotes for good
START_HOGGING = os.geteuid() == 0


class HogPolicy:
    """Which runner children hog a core, at what CPU priority they run, and when they stand still;
    one per serving process, shared by its process runners and lanes (runners are its keys)."""

    def __init__(self, gate: HogGate | None = None) -> None:
        self.gate = gate or HogGate()
        self._hogs: dict[object, int] = {}  #: hogging runner → its child's process id
        self.start_hogging = START_HOGGING  #: whether a child loads as a hog (see child_priority)

    def hogging(self, runner: object) -> bool:
        """Whether the runner's child hogs a core now (its lane then yields to quick lanes)."""
        return runner in self._hogs

    def started(self, runner: object, pid: int) -> None:
        """A new child of the runner: it loads at the lowest priority and yields like any hog (a hog from
        its first batch on is never announced by a change of class, so it is counted here)."""
        self._hogs.pop(runner, None)
        if self.start_hogging:
            self._hogs[runner] = pid
            self.gate.add(pid)

    def answered(self, runner: object, pid: int, cpu_seconds: float, rows: int) -> None:
        """After a batch that burned more than HOG_BATCH_SECONDS of CPU, and more than HOG_ROW_SECONDS per
        row, the child runs at the lowest CPU priority and yields to quick lanes, until its batches are
        cheap again.

        CPU time, not wall time: a model slowed down by a busy machine is not a hog. Per row too: under
        load every lane's batches grow, and a cheap model's 2000-row batch is not a slow model (stopping
        it made it fall further behind, its batches grow further).
        """
        hogging = cpu_seconds > max(HOG_BATCH_SECONDS, HOG_ROW_SECONDS * rows)
        if self.hogging(runner) == hogging:
            return
        with contextlib.suppress(OSError):  # the child may have just left
            cpu_class(pid, hogging=hogging)
            if hogging:
                self._hogs[runner] = pid
            else:
                self._hogs.pop(runner, None)
        if hogging:
            self.gate.add(pid)
        else:
            self.gate.discard(pid)

    def left(self, runner: object, pid: int | None) -> None:
        """The runner's child is leaving: it must not stay stopped."""
        self._hogs.pop(runner, None)
        if pid is not None:
            self.gate.discard(pid)

    def stood_still(self, runner: object) -> Callable[[], float]:
        """From now on, the seconds the runner's child stands still for quick lanes (always 0 when it does
        not hog now): time that is not the model's, so its batch deadline moves by it."""
        if not self.hogging(runner):
            return lambda: 0.0
        since = self.gate.stopped_seconds()
        return lambda: self.gate.stopped_seconds() - since

    def quick_work(self, runner: object) -> contextlib.AbstractContextManager[None]:
        """Around a lane's batch: while a quick model's batch is in flight, hogs stand still."""
        if self.hogging(runner):
            return contextlib.nullcontext()
        return self.gate.quick_work()

    def release(self) -> None:
        """Let every hog run (the server is stopping)."""
        self.gate.release()


def child_priority(start_hogging: bool) -> None:
    """In a new runner child: a model's compute yields to the coordinating process and the database,
    which serve every model; loading (imports, a restart after a crash) runs at the lowest priority
    until a first quick batch when `start_hogging`."""
    if start_hogging:
        cpu_class(0, hogging=True)
    else:
        os.nice(CHILD_NICENESS)


def cpu_class(pid: int, *, hogging: bool) -> None:
    """A hogging child is SCHED_IDLE: any waking process of normal priority preempts it at once (nice 19
    alone still let it finish its time slice first); otherwise it runs at nice CHILD_NICENESS."""
    if hogging:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, pid, HOG_NICENESS)
    else:
        os.setpriority(os.PRIO_PROCESS, pid, CHILD_NICENESS)  # first: leaving SCHED_IDLE checks it
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))


class HogGate:
    """Stops hogging children while quick lanes have a batch in flight; one per serving process."""

    def __init__(
        self,
        *,
        max_share: float = MAX_STOPPED_SHARE,
        max_stop: float = MAX_STOP_SECONDS,
        quick_seconds: float = QUICK_WORK_SECONDS,
    ) -> None:
        self._hogs: set[int] = set()
        self._quick_seconds = quick_seconds
        self._quick = 0
        self._max_share = max_share
        self._max_stop = max_stop
        self._budget = max_stop
        self._refilled_at = time.monotonic()
        self._stopped_since: float | None = None
        self._stopped_total = 0.0
        self._resume_timer: asyncio.TimerHandle | None = None

    def stopped_seconds(self) -> float:
        """Seconds hogs have been kept stopped so far (a runner extends its deadline by its share)."""
        now = time.monotonic()
        return self._stopped_total + (now - self._stopped_since if self._stopped_since is not None else 0)

    def add(self, pid: int) -> None:
        """A child started hogging; stopped at once if quick work is in flight."""
        self._hogs.add(pid)
        if self._stopped_since is not None:
            _signal(pid, signal.SIGSTOP)

    def discard(self, pid: int) -> None:
        """A child is quick again, or leaving: it runs from now on."""
        if pid in self._hogs:
            self._hogs.discard(pid)
            _signal(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def quick_work(self) -> Iterator[None]:
        """Around a quick lane's batch: hogs are stopped while any such batch is in flight (each for
        QUICK_WORK_SECONDS at most)."""
        if not self._hogs:  # the common case costs nothing; a hog that appears meanwhile waits its turn
            yield
            return
        self._quick += 1
        if self._quick == 1:
            self._stop_hogs()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._quick_done()

        expiry = asyncio.get_running_loop().call_later(self._quick_seconds, expire)
        try:
            yield
        finally:
            if not expired:
                expiry.cancel()
                self._quick_done()

    def _quick_done(self) -> None:
        self._quick -= 1
        if self._quick == 0:
            self._continue_hogs()

    def release(self) -> None:
        """Let every hog run (the server is stopping)."""
        self._continue_hogs()
        self._hogs.clear()

    def _stop_hogs(self) -> None:
        self._refill()
        if not self._hogs or self._budget <= 0 or self._stopped_since is not None:
            return
        for pid in self._hogs:
            _signal(pid, signal.SIGSTOP)
        self._stopped_since = time.monotonic()
        self._resume_timer = asyncio.get_running_loop().call_later(self._budget, self._continue_hogs)

    def _continue_hogs(self) -> None:
        if self._stopped_since is None:
            return
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        for pid in self._hogs:
            _signal(pid, signal.SIGCONT)
        self._refill()
        stopped = time.monotonic() - self._stopped_since
        self._budget -= stopped
        self._stopped_total += stopped
        self._stopped_since = None

    def _refill(self) -> None:
        now = time.monotonic()
        self._budget = min(self._max_stop, self._budget + (now - self._refilled_at) * self._max_share)
        self._refilled_at = now


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the child may have just left
        os.kill(pid, sig)
