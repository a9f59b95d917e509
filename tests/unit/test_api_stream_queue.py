"""A stream subscriber that falls a full queue behind is cut off; others are not affected."""

from __future__ import annotations

import asyncio

from coinfleet.api.stream import StreamEvent, StreamFilter, Subscriber


def event(n: int, *, model: str = "a", tag: str = "alert") -> StreamEvent:
    return StreamEvent(kind="prediction", id=n, model=model, tag=tag, data={"id": n})


async def drain(subscriber: Subscriber) -> list[int]:
    return [e.id async for e in subscriber.events()]


async def test_a_full_queue_cuts_the_client_off_after_what_it_had() -> None:
    slow = Subscriber(filter=StreamFilter(), queue=asyncio.Queue(2))
    fast = Subscriber(filter=StreamFilter(), queue=asyncio.Queue(10))
    for n in range(5):
        slow.offer(event(n))
        fast.offer(event(n))
    assert slow.cut_off.is_set()
    assert await drain(slow) == [0, 1]
    assert not fast.cut_off.is_set()
    assert [fast.queue.get_nowait().id for _ in range(5)] == [0, 1, 2, 3, 4]


def test_filters_pick_models_tags_and_kinds() -> None:
    wanted = StreamFilter(models=frozenset({"a"}), tags=frozenset({"alert"}))
    assert wanted.wants(event(1))
    assert not wanted.wants(event(2, model="b"))
    assert not wanted.wants(event(3, tag="negative"))
    model_change = StreamEvent(kind="model", id=1, model="a", tag=None, data={})
    assert wanted.wants(model_change)
    assert not StreamFilter(kinds=frozenset({"prediction"})).wants(model_change)
