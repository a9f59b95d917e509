"""Weighted fair execution slots: under contention a model's share of slot time follows its weight.

Start-time fair queueing: each model has a virtual finish time that grows by `seconds used / weight`
when it releases a slot; a free slot goes to the waiting request with the smallest start tag
`max(virtual clock, its model's finish time)`. A model that waited keeps its tag while the others' tags
grow, so it is served eventually whatever its weight (aging: nobody starves). With free slots and no
queue, a request is granted at once, so without contention every model runs at full speed.

A small batch (expected to take under SMALL_BATCH_SECONDS of CPU) holds no slot: it is granted at once
and only charged. A slot is held for the wall time of a runner's answer, and under load that is mostly
the child waiting for a core that the database and the serving process keep busy; cheap models' 1 ms
batches queued for two slots then, while their runners used a tenth of the machine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

#: a batch expected to take less CPU than this is too small to queue for a slot
SMALL_BATCH_SECONDS = 0.002


@dataclass(order=True)
class _Waiter:
    tag: float
    order: int
    key: str = field(compare=False)
    hog: bool = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class FairSlots:
    """A fixed number of execution slots shared by weighted keys (models).

    A slot held by a hogging runner does not count against quick ones: while quick lanes work, hogs stand
    still (hogs.HogPolicy), so they use no core then. Hogs compete for whatever quick runners leave.
    """

    def __init__(self, slots: int, *, quantum: float = 0.025) -> None:
        if slots < 1:
            raise ValueError("at least one execution slot is needed")
        self.quantum = quantum  #: seconds a body holds its slot at most
        self._slots = slots
        self._held = {False: 0, True: 0}  #: slots held, by whether the holder hogs
        self._queue: list[_Waiter] = []
        self._finish: dict[str, float] = {}
        self._clock = 0.0
        self._order = itertools.count()
        self.used: dict[str, float] = {}  #: slot seconds each key has used (for reports and benchmarks)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._queue)

    @asynccontextmanager
    async def slot(
        self, key: str, weight: float, *, hog: bool = False, expected_seconds: float | None = None
    ) -> AsyncIterator[Lease]:
        """Hold one slot for the body; charge the time it took to `key`, scaled by 1 / weight. A body
        expected to take under SMALL_BATCH_SECONDS of CPU holds none (see the module's doc) and is only
        charged; None means not known.

        The body may give the slot back before it ends (`Lease.release`: a runner whose answer has
        arrived no longer needs a core while its lane waits for the event loop). A body still running
        after one quantum gives its slot back early too (a hanging or very slow model must not keep
        others from running); the rest of its time is still charged when it ends.
        """
        small = expected_seconds is not None and expected_seconds < SMALL_BATCH_SECONDS
        if not small:
            await self._acquire(key, hog)
        lease = Lease(self, key, weight, hog, holds=not small)
        try:
            yield lease
        finally:
            lease.release()

    def _fits(self, hog: bool) -> bool:
        quick = self._held[False]
        return (quick + self._held[True] if hog else quick) < self._slots

    async def _acquire(self, key: str, hog: bool) -> None:
        if self._fits(hog):  # whoever waits does not fit (a release hands over at once)
            self._held[hog] += 1
            return
        waiter = _Waiter(
            tag=max(self._clock, self._finish.get(key, 0.0)),
            order=next(self._order),
            key=key,
            hog=hog,
            granted=asyncio.get_running_loop().create_future(),
        )
        heapq.heappush(self._queue, waiter)
        try:
            await waiter.granted
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.granted.done() and not waiter.granted.cancelled():
            self._give_back(waiter.hog)  # it was granted a slot it will never use
        elif waiter in self._queue:
            self._queue.remove(waiter)
            heapq.heapify(self._queue)

    def _release(self, key: str, weight: float, hog: bool, seconds: float) -> None:
        self._charge(key, weight, seconds)
        self._give_back(hog)

    def _charge(self, key: str, weight: float, seconds: float) -> None:
        start = max(self._clock, self._finish.get(key, 0.0))
        self._finish[key] = start + seconds / weight
        self.used[key] = self.used.get(key, 0.0) + seconds

    def _give_back(self, hog: bool) -> None:
        """Free a slot and grant it to the waiters that now fit, smallest tag first."""
        self._held[hog] -= 1
        for waiter in sorted(self._queue):
            if waiter.granted.cancelled():
                self._queue.remove(waiter)
            elif self._fits(waiter.hog):
                self._queue.remove(waiter)
                self._held[waiter.hog] += 1
                self._clock = max(self._clock, waiter.tag)
                waiter.granted.set_result(None)
        heapq.heapify(self._queue)


class Lease:
    """One granted slot, charged from its grant until `release` (which may come early, and more than once)."""

    def __init__(self, slots: FairSlots, key: str, weight: float, hog: bool, *, holds: bool = True) -> None:
        self._slots = slots
        self._key = key
        self._weight = weight
        self._hog = hog
        self._started = time.perf_counter()
        self._returned = False  #: the slot went back at the quantum; the rest is charged at release
        self._released = False
        #: gives a held slot back at the quantum; None when the lease holds no slot, only a charge
        self._timer = asyncio.get_running_loop().call_later(slots.quantum, self._give_back) if holds else None

    def release(self) -> None:
        """Give the slot back now and charge its time; later calls do nothing."""
        if self._released:
            return
        self._released = True
        elapsed = time.perf_counter() - self._started
        if self._timer is None:
            self._slots._charge(self._key, self._weight, elapsed)
        elif self._returned:
            self._slots._charge(self._key, self._weight, elapsed - self._slots.quantum)
        else:
            self._timer.cancel()
            self._slots._release(self._key, self._weight, self._hog, elapsed)

    def _give_back(self) -> None:
        self._returned = True
        self._slots._release(self._key, self._weight, self._hog, self._slots.quantum)
