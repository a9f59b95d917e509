"""A real MCP client session over HTTP: lists the tools, calls some (one a write), needs the token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from api_support import TOKEN, running_api
from coinfleet.feed.writer import insert_metrics
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from support import market_rows

EXPECTED_TOOLS = {
    "models_list", "model_details", "model_activate", "model_deactivate", "model_resume", "model_rename",
    "model_settings_update", "predictions_list", "coin_detail", "statistics", "lag", "health", "ready",
    "score_coin", "alerts_list", "alert_retry", "alerts_retry_dead", "model_versions", "model_promote",
    "model_compare", "calibration", "drift",
}  # fmt: skip


@asynccontextmanager
async def mcp_client(base_url: str, token: str | None = TOKEN) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, sending `token`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{base_url}/mcp/", http_client=http)) as client,
    ):
        yield client


async def test_tools_list_and_calls(pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle) -> None:
    rows = market_rows(coins=3, seconds=300)
    async with pool.acquire() as conn:
        await import_bundle(conn, replace(small_bundle, name="first"), activate=True)
        await insert_metrics(conn, rows)
    async with running_api(db_dsn) as api, mcp_client(api.base_url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == EXPECTED_TOOLS
        assert all(tool.description and tool.output_schema for tool in tools.values())
        ready = await client.call_tool("ready", {})
        assert not ready.is_error
        assert ready.structured_content is not None and ready.structured_content["database"] is True
        listed = await client.call_tool("models_list", {})
        assert listed.structured_content is not None
        assert [m["name"] for m in listed.structured_content["result"]] == ["first"]
        changed = await client.call_tool("model_settings_update", {"name": "first", "changes": {"weight": 3}})
        assert not changed.is_error, changed.content
        assert (
            changed.structured_content is not None and changed.structured_content["settings"]["weight"] == 3
        )
        refused = await client.call_tool(
            "model_settings_update", {"name": "first", "changes": {"weight": -1}}
        )
        assert refused.is_error and "weight" in str(refused.content)
        page = await client.call_tool("predictions_list", {"model": "first", "limit": 5})
        assert not page.is_error and page.structured_content is not None
        assert page.structured_content["items"] == []
        scored = await client.call_tool("score_coin", {"mint": rows[-1].mint})
        assert not scored.is_error, scored.content
        assert scored.structured_content is not None
        (score,) = scored.structured_content["scores"]
        assert score["model"] == "first" and 0 <= score["probability"] <= 1
        versions = await client.call_tool("model_versions", {"name": "first"})
        assert versions.structured_content is not None
        assert [(v["version"], v["serving"]) for v in versions.structured_content["result"]] == [(1, True)]
        no_version = await client.call_tool("model_promote", {"name": "first", "version": 4})
        assert no_version.is_error and "version" in str(no_version.content)
        no_shadow = await client.call_tool("model_compare", {"name": "first"})
        assert no_shadow.is_error and "shadow" in str(no_shadow.content)
        renamed = await client.call_tool("model_rename", {"name": "first", "new_name": "second"})
        assert not renamed.is_error, renamed.content
        missing = await client.call_tool("model_rename", {"name": "first", "new_name": "third"})
        assert missing.is_error
        assert "no model named 'first'" in str(missing.content)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT name, settings ->> 'weight' AS weight FROM coinfleet_models")
    assert row is not None and (row["name"], row["weight"]) == ("second", "3.0")


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_mcp_refuses_requests_without_the_token(db_dsn: str, token: str | None) -> None:
    async with running_api(db_dsn) as api:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = await api.anonymous.post(
            "/mcp/", headers=headers | {"Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )  # fmt: skip
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
        with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK wraps the 401 in its own error types
            async with mcp_client(api.base_url, token) as client:
                await client.list_tools()
    assert isinstance(answer, httpx.Response)
