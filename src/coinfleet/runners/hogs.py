"""Hogging runners step aside while quick lanes work.

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
from collections.abc import Iterator

#: at most this share of wall time may a hog spend stopped
MAX_STOPPED_SHARE = 0.5
#: the longest a hog is stopped at a stretch (also the budget's cap)
MAX_STOP_SECONDS = 0.5
#: a batch counts as quick work for this long at most (a hanging runner call must not hold hogs)
QUICK_WORK_SECONDS = 0.05


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
