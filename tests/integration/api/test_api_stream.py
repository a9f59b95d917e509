"""The live stream: a real INSERT into coin_metrics reaches an SSE client as a prediction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from api_support import running_api
from coinfleet.config import Settings
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import market_rows

SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300, runner="inline")


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream response."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def test_a_metric_insert_reaches_a_stream_client(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    async with pool.acquire() as conn:
        for name in ("watched", "ignored"):
            await import_bundle(
                conn, replace(small_bundle, name=name),
                settings=ModelSettings(min_scan_interval_seconds=0), activate=True,
            )  # fmt: skip
    supervisor = Supervisor(pool=pool, dsn=db_dsn, settings=SETTINGS)
    lanes = asyncio.create_task(supervisor.run())
    try:
        async with (
            running_api(db_dsn) as api,
            api.anonymous.stream(
                "GET", "/api/stream", params={"model": "watched", "kind": "prediction"}
            ) as answer,
        ):
            assert answer.headers["content-type"].startswith("text/event-stream")
            received = sse_events(answer)
            assert (await anext(received))[0] == "subscribed"
            async with pool.acquire() as conn:
                await insert_metrics(conn, market_rows(coins=5, seconds=120))
            async with asyncio.timeout(120):
                kind, data = await anext(received)
            exposition = (await api.anonymous.get("/metrics")).text
    finally:
        supervisor.stop()
        await lanes
    assert kind == "prediction"
    assert data["model"] == "watched"
    assert 0 <= data["probability"] <= 1
    async with pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT mint, tag FROM coinfleet_predictions WHERE id = $1", data["id"])
    assert stored is not None and (stored["mint"], stored["tag"]) == (data["mint"], data["tag"])
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    scored_by = {s.labels["model"] for s in families["coinfleet_lane_predictions"].samples}
    assert "watched" in scored_by  # the lanes' own counters, kept in this (the serving) process


async def test_stream_rejects_an_unknown_tag(db_dsn: str) -> None:
    async with running_api(db_dsn) as api:
        answer = await api.anonymous.get("/api/stream", params={"tag": "maybe"})
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert "tag" in answer.json()["message"]
