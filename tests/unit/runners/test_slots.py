"""Fair slots: shares follow weights under contention, nobody starves, no waiting without contention."""

from __future__ import annotations

import asyncio

import pytest

from coinfleet.runners import slots as slots_module
from coinfleet.runners.slots import SMALL_BATCH_SECONDS, FairSlots


class WorkClock:
    """The slots' clock in the contention tests: it moves only by the work the models do while they hold
    a slot, so each hold is charged exactly its work, however long a busy machine keeps this process
    from running (on the real clock such a pause is charged to whoever held the slot then)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> WorkClock:
    clock = WorkClock()
    monkeypatch.setattr(slots_module, "time", clock)
    return clock


async def busy_model(slots: FairSlots, clock: WorkClock, key: str, weight: float, until: float) -> None:
    """Ask for a slot again and again, working 5 ms each time, until the clock reaches `until`."""
    while clock.now < until:
        async with slots.slot(key, weight):
            clock.now += 0.005
            await asyncio.sleep(0)  # the others queue meanwhile


async def run_contention(
    clock: WorkClock, weights: dict[str, float], seconds: float = 1.0
) -> dict[str, float]:
    slots = FairSlots(1, quantum=3600)  # no hold reaches the quantum (its own test is below)
    await asyncio.gather(*(busy_model(slots, clock, k, w, seconds) for k, w in weights.items()))
    total = sum(slots.used.values())
    return {k: slots.used.get(k, 0.0) / total for k in weights}


async def test_shares_follow_weights_and_the_lightest_is_served(clock: WorkClock) -> None:
    shares = await run_contention(clock, {"w1": 1, "w2": 2, "w4": 4})
    assert shares["w1"] < shares["w2"] < shares["w4"]
    assert shares["w1"] > 0.05  # the lowest weight still gets served
    for key, weight in {"w1": 1, "w2": 2, "w4": 4}.items():
        assert shares[key] == pytest.approx(weight / 7, abs=0.1)


async def test_equal_weights_share_equally(clock: WorkClock) -> None:
    shares = await run_contention(clock, {"a": 1, "b": 1})
    assert shares["a"] == pytest.approx(0.5, abs=0.1)


async def test_no_waiting_without_contention() -> None:
    slots = FairSlots(2)
    async with slots.slot("a", 1), slots.slot("b", 1):
        assert slots.waiting == 0


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    slots = FairSlots(1)
    async with slots.slot("a", 1):
        waiter = asyncio.create_task(slots.slot("b", 1).__aenter__())
        await asyncio.sleep(0)
        assert slots.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with asyncio.timeout(1), slots.slot("c", 1):
        assert slots.waiting == 0


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="slot"):
        FairSlots(0)


async def test_a_hanging_holder_gives_the_slot_back_after_one_quantum() -> None:
    slots = FairSlots(1, quantum=0.05)
    hang = asyncio.Event()

    async def hanging() -> None:
        async with slots.slot("hang", 1):
            await hang.wait()

    holder = asyncio.create_task(hanging())
    await asyncio.sleep(0)
    async with asyncio.timeout(5), slots.slot("fast", 1):
        pass  # granted although "hang" never left its body
    hang.set()
    await holder
    # charged its whole hold; uvloop's timers run on a millisecond clock and may fire up to 1 ms before
    # the monotonic clock that measures the hold says the quantum has passed
    assert slots.used["hang"] >= 0.05 - 0.002


async def test_a_released_lease_frees_its_slot_before_the_body_ends() -> None:
    slots = FairSlots(1, quantum=60)
    async with slots.slot("a", 1) as lease:
        lease.release()
        lease.release()  # a second release changes nothing
        async with asyncio.timeout(1), slots.slot("b", 1):
            assert slots.waiting == 0
    assert slots.used["a"] < 1


async def test_slots_held_by_hogs_do_not_keep_quick_runners_waiting() -> None:
    slots = FairSlots(1, quantum=60)
    async with slots.slot("hog", 1, hog=True):
        async with asyncio.timeout(1), slots.slot("quick", 1):
            assert slots.waiting == 0  # the hog stands still while quick work runs (HogGate)
            waiter = asyncio.create_task(slots.slot("other hog", 1, hog=True).__aenter__())
            await asyncio.sleep(0)
            assert slots.waiting == 1  # a hog waits for what quick runners leave
        await asyncio.sleep(0)
        assert slots.waiting == 1  # ... and for the other hog
    async with asyncio.timeout(1):
        await waiter
    assert slots.waiting == 0


async def test_a_small_batch_holds_no_slot_and_is_charged() -> None:
    slots = FairSlots(1, quantum=60)
    async with slots.slot("big", 1):
        async with asyncio.timeout(1), slots.slot("small", 1, expected_seconds=SMALL_BATCH_SECONDS / 2):
            assert slots.waiting == 0  # granted beside the holder at once
            await asyncio.sleep(0.01)
        waiter = asyncio.create_task(slots.slot("other", 1).__aenter__())
        await asyncio.sleep(0)
        assert slots.waiting == 1  # the one slot is still the big batch's: the small one took none
    async with asyncio.timeout(1):
        await waiter
    assert slots.used["small"] >= 0.01 - 0.002  # its time counts against its weight all the same
