"""The stream's pieces without a database: payloads split into messages, filters, the bounded queue that
cuts a slow client off, and the replay window behind Last-Event-ID."""

from __future__ import annotations

import json

from coinfleet.api.stream import Batch, ReplayWindow, StreamFilter, Subscriber, parse_note


def batch(*ids: int, model: str = "a", tag: str = "alert") -> Batch:
    lines = tuple(json.dumps({"id": n}) for n in ids)
    return Batch(event="prediction", kind="prediction", model=model, tag=tag, lines=lines)


async def drain(subscriber: Subscriber) -> list[int]:
    return [json.loads(line)["id"] async for b, start in subscriber.pieces() for line in b.lines[start:]]


def test_a_payload_becomes_one_batch_of_lines() -> None:
    parsed = parse_note('alert alert m00 alert -\n{"id": 1}\n{"id": 2}')
    assert parsed == Batch(
        event="alert", kind="alert", model="m00", tag="alert", lines=('{"id": 1}', '{"id": 2}')
    )
    assert parsed.data == parsed.lines  # alerts come as their JSON
    skipped = parse_note('skipped prediction m00 - -\n{"kind": "skipped", "counts": {"negative": 9}}')
    assert skipped is not None and (skipped.event, skipped.kind, skipped.tag) == (
        "skipped",
        "prediction",
        None,
    )
    assert (
        parse_note('{"kind": "prediction", "first": 1, "last": 2, "models": [1]}') is None
    )  # an old trigger's


def test_compact_prediction_rows_become_the_messages_json() -> None:
    created = "2026-12-07T15:00:00.123456+00:00"
    payload = f'prediction prediction m00 positive {created}\n7,0.625,"2025-06-01T00:00:00+00:00",mint,"odd\\'
    parsed = parse_note(payload)
    assert parsed is not None and parsed.created == created
    (data,) = parsed.data
    assert json.loads(data) == {
        "kind": "prediction", "id": 7, "model": "m00", "mint": 'mint,"odd\\', "probability": 0.625,
        "metric_ts": "2025-06-01T00:00:00+00:00", "tag": "positive", "created_at": created,
    }  # fmt: skip


def test_a_batch_encodes_one_sse_message_per_line_with_its_number() -> None:
    numbered = ReplayWindow(10).add(batch(7, 8))
    text = numbered.sse("hub", start=1).decode()
    assert text == 'id: hub-2\r\nevent: prediction\r\ndata: {"id": 8}\r\n\r\n'


async def test_a_full_queue_cuts_the_client_off_after_what_it_had() -> None:
    slow = Subscriber(filter=StreamFilter(), size=4)
    fast = Subscriber(filter=StreamFilter(), size=10)
    for first in (0, 2, 4):
        slow.offer(batch(first, first + 1))
        fast.offer(batch(first, first + 1))
    assert slow.cut_off.is_set()
    assert await drain(slow) == [0, 1, 2, 3]
    assert not fast.cut_off.is_set() and fast.waiting == 6
    fast.stop()
    assert await drain(fast) == [0, 1, 2, 3, 4, 5]


def test_filters_pick_models_tags_and_kinds() -> None:
    wanted = StreamFilter(models=frozenset({"a"}), tags=frozenset({"alert"}))
    assert wanted.wants(batch(1))
    assert not wanted.wants(batch(2, model="b"))
    assert not wanted.wants(batch(3, tag="negative"))
    model_change = Batch(event="model", kind="model", model="a", tag=None, lines=("{}",))
    assert wanted.wants(model_change)
    assert not StreamFilter(kinds=frozenset({"prediction"})).wants(model_change)
    skipped = Batch(event="skipped", kind="prediction", model="a", tag=None, lines=("{}",))
    assert StreamFilter(kinds=frozenset({"prediction"}), tags=frozenset({"alert"})).wants(skipped)


def test_the_replay_window_gives_what_came_after_an_id_or_none() -> None:
    window = ReplayWindow(4)
    numbered = [window.add(batch(2 * n, 2 * n + 1)) for n in range(3)]  # keeps the last 2 batches: 3..6
    ids = [f"{window.name}-{n}" for n in range(1, 7)]
    after = window.after(ids[2]) or []  # after message 3: 4 (rest of the second batch), then 5, 6
    assert [(b.first, start) for b, start in after] == [(numbered[1].first, 1), (numbered[2].first, 0)]
    assert window.after(ids[5]) == []
    assert window.after(ids[2]) is not None and window.after(ids[1]) is not None  # 2 is the last one gone
    assert window.after(ids[0]) is None, "message 2 was dropped: a gap"
    assert window.after(f"{window.name}-9") is None, "an id from the future is not ours"
    assert window.after("other-3") is None
    assert window.after(f"{window.name}-x") is None


async def test_missed_messages_come_first_and_filtered() -> None:
    subscriber = Subscriber(filter=StreamFilter(models=frozenset({"a"})), size=10)
    subscriber.missed = [(batch(1, 2), 1), (batch(3, model="b"), 0), (batch(4), 0)]
    subscriber.offer(batch(5))
    subscriber.stop()
    assert await drain(subscriber) == [2, 4, 5]
