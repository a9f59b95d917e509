"""Resuming the live stream with Last-Event-ID: what was missed comes once, a lost position says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from api_support import RunningApi, running_api
from coinfleet.db.sql import query
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle


@dataclass(frozen=True)
class Message:
    event: str
    id: str | None
    data: dict[str, Any]


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The messages of a text/event-stream response."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "" and "data" in fields:
            yield Message(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
            fields = {}
        elif ":" in line and not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.strip()


async def store_predictions(pool: asyncpg.Pool, model_id: int, count: int, start: datetime) -> None:
    """`count` predictions in one INSERT (one NOTIFY), as the lanes store them."""
    async with pool.acquire() as conn:
        await conn.execute(query("bench_history_predictions"), model_id, count, start)


async def take(stream: AsyncIterator[Message], count: int) -> list[Message]:
    async with asyncio.timeout(60):
        return [await anext(stream) for _ in range(count)]


async def connect(api: RunningApi, last_event_id: str | None = None) -> Any:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return api.anonymous.stream("GET", "/api/stream", params={"kind": "prediction"}, headers=headers)


async def test_a_client_that_reconnects_gets_what_it_missed_once(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    async with pool.acquire() as conn:
        model = await import_bundle(conn, replace(small_bundle, name="watched"))
    async with running_api(db_dsn) as api:
        async with await connect(api) as answer:
            first = messages(answer)
            assert (await anext(first)).event == "subscribed"
            await store_predictions(pool, model.id, 3, datetime(2025, 6, 1, tzinfo=UTC))
            seen = await take(first, 3)
        assert [m.event for m in seen] == ["prediction"] * 3
        assert all(m.id for m in seen)
        await store_predictions(pool, model.id, 2, datetime(2025, 7, 1, tzinfo=UTC))  # while away

        async with await connect(api, seen[-1].id) as answer:
            again = messages(answer)
            assert (await anext(again)).event == "subscribed"
            missed = await take(again, 2)
            await store_predictions(pool, model.id, 1, datetime(2025, 8, 1, tzinfo=UTC))
            (live,) = await take(again, 1)
        assert [m.data["metric_ts"][:7] for m in missed] == ["2025-07", "2025-07"]
        assert live.data["metric_ts"].startswith("2025-08")
        ids = [m.data["id"] for m in [*seen, *missed, live]]
        assert len(set(ids)) == 6, "nothing twice"

        async with await connect(api, seen[0].id) as answer:  # from further back: the rest again
            replayed = await take(messages(answer), 6)
        assert [m.data["id"] for m in replayed[1:]] == ids[1:]


async def test_an_unknown_or_lost_position_gives_a_gap(db_dsn: str) -> None:
    async with running_api(db_dsn) as api:
        for stale in ("0badcafe-12", "not-an-id", "x"):
            async with await connect(api, stale) as answer:
                subscribed, gap = await take(messages(answer), 2)
            assert subscribed.event == "subscribed"
            assert gap.event == "gap" and gap.data["last_event_id"] == stale
        too_long = await api.anonymous.get("/api/stream", headers={"Last-Event-ID": "9" * 101})
        assert too_long.status_code == 422


async def test_past_250_rows_of_a_statement_the_rest_come_counted(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    async with pool.acquire() as conn:
        model = await import_bundle(conn, replace(small_bundle, name="busy"))
    async with running_api(db_dsn) as api, await connect(api) as answer:
        stream = messages(answer)
        assert (await anext(stream)).event == "subscribed"
        await store_predictions(pool, model.id, 400, datetime(2025, 6, 1, tzinfo=UTC))
        received = await take(stream, 251)
    rows, (skipped,) = received[:250], received[250:]
    assert {m.event for m in rows} == {"prediction"}
    assert len({m.data["id"] for m in rows}) == 250 and all(m.data["model"] == "busy" for m in rows)
    assert skipped.event == "skipped" and skipped.data["of"] == "prediction"
    assert sum(skipped.data["counts"].values()) == 150
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT id, tag FROM coinfleet_predictions ORDER BY id")
    assert {m.data["id"]: m.data["tag"] for m in rows} == {r["id"]: r["tag"] for r in stored[:250]}
    assert (skipped.data["first"], skipped.data["last"]) == (stored[250]["id"], stored[-1]["id"])


async def test_the_triggers_send_rows_only_while_a_hub_watches(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    async with pool.acquire() as conn:
        model = await import_bundle(conn, replace(small_bundle, name="quiet"))
    listener = await asyncpg.connect(db_dsn)
    payloads: list[str] = []
    try:
        await listener.add_listener("coinfleet_stream", lambda *note: payloads.append(note[3]))
        await store_predictions(pool, model.id, 3, datetime(2025, 6, 1, tzinfo=UTC))
        async with running_api(db_dsn) as api, await connect(api) as answer:
            stream = messages(answer)
            await take(stream, 1)  # subscribed: the hub watches
            await store_predictions(pool, model.id, 2, datetime(2025, 7, 1, tzinfo=UTC))
            await take(stream, 2)
        async with pool.acquire() as conn:
            watching = await conn.fetchval("SELECT count(*) FROM coinfleet_stream_watch")
        await store_predictions(pool, model.id, 4, datetime(2025, 8, 1, tzinfo=UTC))
        await asyncio.sleep(0.5)
    finally:
        await listener.close()
    assert watching == 0, "a stopped hub withdraws its watch"
    assert [p.count("\n") for p in payloads] == [2], "only the rows stored while a client followed"
