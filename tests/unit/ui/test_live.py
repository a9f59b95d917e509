"""One read per interval whoever asks; rates from counters, with resets shown as gaps."""

from __future__ import annotations

import asyncio

from coinfleet.ui.live import History, Sample, Shared


async def test_callers_within_max_age_share_one_read() -> None:
    reads = 0
    now = [0.0]

    async def fetch() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)
        return reads

    shared = Shared(fetch, max_age=2.0, clock=lambda: now[0])
    assert await asyncio.gather(*(shared.get() for _ in range(10))) == [1] * 10
    now[0] = 1.9
    assert await shared.get() == 1
    now[0] = 2.0
    assert await shared.get() == 2 and reads == 2


def test_rates_between_samples_and_a_reset_is_a_gap() -> None:
    history = History(size=3)
    for at, events in ((0, 0), (2, 10), (4, 30), (6, 5)):
        history.add(1, Sample(at=at, events=events, lag_events=at, lag_seconds=None))
    history.add(1, Sample(at=6, events=99, lag_events=0, lag_seconds=None))  # not newer: ignored
    points = history.points(1)
    assert [p.at for p in points] == [2, 4, 6], "only the last 3 samples are kept"
    assert [p.events_per_second for p in points] == [None, 10.0, None]
    assert history.latest_rate(1) is None and history.latest_rate(2) is None
    history.forget_except({2})
    assert history.points(1) == []


async def test_latest_never_waits_and_reads_once_in_the_background() -> None:
    now = [0.0]
    gate = asyncio.Event()
    reads = 0

    async def fetch() -> int:
        nonlocal reads
        reads += 1
        await gate.wait()
        return reads

    shared = Shared(fetch, max_age=1.0, clock=lambda: now[0])
    assert [shared.latest() for _ in range(3)] == [None, None, None], "nothing read yet, nobody waits"
    await asyncio.sleep(0)
    assert reads == 1, "one read runs in the background"
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert shared.latest() == 1
    now[0] = 5.0
    gate.clear()
    assert shared.latest() == 1, "stale, answered at once"
    await asyncio.sleep(0)
    assert reads == 2
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert shared.latest() == 2
