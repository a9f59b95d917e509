"""The operator traffic of `coinfleet bench api`: a child process of HTTP, SSE and MCP clients.

A separate process, like real operators' tools: its own CPU work (JSON parsing, TLS-free HTTP) does not
run on the serving process's event loop, only the server's side of each request does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

#: concurrent REST clients, each sending its next request as soon as the last one answered
REST_CLIENTS = 4
#: niceness of the client process
CLIENT_NICE = 10
#: seconds a client waits between two requests (operators' tools poll; they do not spin)
THINK_SECONDS = 0.02


@dataclass(frozen=True, kw_only=True)
class Traffic:
    """What the clients do and for how long."""

    base_url: str
    token: str
    seconds: float
    paths: tuple[str, ...]  #: REST paths (with query strings) the clients cycle through
    stream_model: str  #: the SSE subscriber follows this model's predictions
    mcp_tools: tuple[tuple[str, str], ...]  #: (tool name, JSON arguments) the MCP client cycles through


@dataclass(kw_only=True)
class Observed:
    """Latencies seen by the clients, in milliseconds."""

    requests_ms: list[float] = field(default_factory=list)
    by_path_ms: dict[str, list[float]] = field(default_factory=dict)
    stream_lag_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def start(traffic: Traffic) -> tuple[SpawnProcess, Connection]:
    """Start the clients in a spawned process; their Observed comes through the returned pipe."""
    ours, theirs = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=_main, args=(traffic, theirs), name="coinfleet-bench-api-clients"
    )
    process.start()
    return process, ours


def _main(traffic: Traffic, conn: Connection) -> None:
    # operators' tools run elsewhere; here they share the cores, so they yield them to what is measured
    os.nice(CLIENT_NICE)
    observed = Observed()
    try:
        asyncio.run(_run(traffic, observed))
    except Exception as exc:  # reported to the benchmark, which shows it
        observed.failures.append(f"{type(exc).__name__}: {exc}")
    conn.send(observed)
    conn.close()


async def _run(traffic: Traffic, observed: Observed) -> None:
    deadline = time.monotonic() + traffic.seconds
    headers = {"Authorization": f"Bearer {traffic.token}"}
    async with httpx.AsyncClient(base_url=traffic.base_url, headers=headers, timeout=30) as http:
        stream = asyncio.create_task(_subscribe(http, traffic.stream_model, observed))
        workers = [
            _rest(http, traffic.paths[i:] + traffic.paths[:i], deadline, observed)
            for i in range(REST_CLIENTS)
        ]
        await asyncio.gather(*workers, _mcp(traffic, headers, deadline, observed))
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream


async def _rest(http: httpx.AsyncClient, paths: tuple[str, ...], deadline: float, observed: Observed) -> None:
    turn = 0
    while time.monotonic() < deadline:
        path = paths[turn % len(paths)]
        turn += 1
        began = time.perf_counter()
        answer = await http.get(path)
        await answer.aread()
        ms = 1000 * (time.perf_counter() - began)
        if answer.status_code != 200:
            observed.failures.append(f"GET {path}: {answer.status_code}")
        observed.requests_ms.append(ms)
        observed.by_path_ms.setdefault(path.split("?")[0], []).append(ms)
        await asyncio.sleep(THINK_SECONDS)


async def _subscribe(http: httpx.AsyncClient, model: str, observed: Observed) -> None:
    params = {"model": model, "kind": "prediction"}
    async with http.stream("GET", "/api/stream", params=params, timeout=None) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data:") and "created_at" in line:
                created = datetime.fromisoformat(json.loads(line.removeprefix("data:"))["created_at"])
                observed.stream_lag_ms.append(1000 * (time.time() - created.timestamp()))


async def _mcp(traffic: Traffic, headers: dict[str, str], deadline: float, observed: Observed) -> None:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{traffic.base_url}/mcp/", http_client=http)) as client,
    ):
        turn = 0
        while time.monotonic() < deadline:
            name, arguments = traffic.mcp_tools[turn % len(traffic.mcp_tools)]
            turn += 1
            began = time.perf_counter()
            result = await client.call_tool(name, json.loads(arguments))
            ms = 1000 * (time.perf_counter() - began)
            if result.is_error:
                observed.failures.append(f"MCP {name}: {result.content}")
            observed.requests_ms.append(ms)
            observed.by_path_ms.setdefault(f"mcp:{name}", []).append(ms)
            await asyncio.sleep(THINK_SECONDS)
