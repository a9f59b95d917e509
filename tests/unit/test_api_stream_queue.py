"""A stream subscriber that falls a full queue behind is cut off; others are not affected."""

from __future__ import annotations

import asyncio

from coinfleet.api.stream import ReplayWindow, StreamEvent, StreamFilter, Subscriber


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


def test_the_replay_window_gives_what_came_after_an_id_or_none() -> None:
    window = ReplayWindow(3)
    numbered = [window.add(event(n)) for n in range(5)]  # keeps the last 3: seq 3, 4, 5
    ids = [window.event_id(e) for e in numbered]
    assert [e.id for e in window.after(ids[1]) or []] == [2, 3, 4]  # seq 2 is gone, 3.. are all kept
    assert [e.id for e in window.after(ids[3]) or []] == [4]
    assert window.after(ids[4]) == []
    assert window.after(ids[0]) is None, "seq 2 was dropped: a gap"
    assert window.after(f"{window.name}-9") is None, "an id from the future is not ours"
    assert window.after("other-3") is None
    assert window.after(f"{window.name}-x") is None


async def test_missed_events_come_first_and_filtered() -> None:
    subscriber = Subscriber(filter=StreamFilter(models=frozenset({"a"})), queue=asyncio.Queue(10))
    subscriber.missed = [event(1), event(2, model="b"), event(3)]
    subscriber.offer(event(4))
    subscriber.cut_off.set()
    assert await drain(subscriber) == [1, 3, 4]
