"""The operator traffic of `coinfleet bench api`: two child processes, one of REST and MCP clients, one
following the live stream.

Separate processes, like real operators' tools: their own CPU work (HTTP, JSON) does not run on the
serving process's event loop, only the server's side of each request does; and the stream's client
reads its events as they come, not between the REST clients' answers on a shared event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from coinfleet.db.priority import lower_process, name_process

#: concurrent REST clients, each sending its next request as soon as the last one answered
REST_CLIENTS = 4
#: niceness of the client processes: operators' tools run on other machines; here they share the cores,
#: so they yield them (said under the table) — but not as SCHED_IDLE, which would count their own wait
#: for an idle core in the API's latency and the stream's lag
CLIENT_NICE = 19
#: the client processes' names in ps and top (and in the benchmark's CPU by part), by role
PROCESS_NAMES = {"requests": "cf-bench-rest", "stream": "cf-bench-sse"}
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


@dataclass(frozen=True)
class Clients:
    """The two client processes, started and idle until `go`, and the pipes to them."""

    processes: tuple[SpawnProcess, ...]
    pipes: tuple[Connection, ...]

    def go(self) -> None:
        """Start the traffic (for `Traffic.seconds` from now)."""
        for pipe in self.pipes:
            pipe.send("go")

    def observed(self) -> Observed:
        """Both processes' figures together (blocks until both have sent theirs)."""
        merged = Observed()
        for pipe in self.pipes:
            part: Observed = pipe.recv()
            merged.requests_ms += part.requests_ms
            merged.stream_lag_ms += part.stream_lag_ms
            merged.failures += part.failures
            for path, ms in part.by_path_ms.items():
                merged.by_path_ms.setdefault(path, []).extend(ms)
        return merged

    def join(self, timeout: float) -> None:
        """Wait for both processes to end (ended when they did not, e.g. never told to go)."""
        for pipe in self.pipes:
            pipe.close()  # one still waiting for `go` leaves
        for process in self.processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join()


def start(traffic: Traffic, roles: tuple[str, ...] = tuple(PROCESS_NAMES)) -> Clients:
    """Start the REST and MCP clients and the stream's client (or those of `roles`) in spawned
    processes; return once they have done their imports (start-up is not operator traffic) and wait
    for `go`."""
    context = multiprocessing.get_context("spawn")
    processes, pipes = [], []
    for role in roles:
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(target=_main, args=(traffic, role, theirs), name=PROCESS_NAMES[role])
        process.start()
        processes.append(process)
        pipes.append(ours)
    for pipe in pipes:
        pipe.recv()  # ready
    return Clients(tuple(processes), tuple(pipes))


def _main(traffic: Traffic, role: str, conn: Connection) -> None:
    # operators' tools run elsewhere; here they share the cores, so they yield them to what is measured
    lower_process(CLIENT_NICE)
    name_process(PROCESS_NAMES[role])
    if role == "requests":  # every route once, unmeasured: first calls and the API's start-up are done
        with contextlib.suppress(Exception):  # a failing route shows in the measured part
            asyncio.run(_run(replace(traffic, seconds=0), Observed(), rounds=1))
    conn.send("ready")
    try:
        conn.recv()  # go
    except EOFError:  # the benchmark ended before the traffic phase
        return
    observed = Observed()
    try:
        asyncio.run(_run(traffic, observed) if role == "requests" else _follow(traffic, observed))
    except Exception as exc:  # reported to the benchmark, which shows it
        observed.failures.append(f"{role}: {type(exc).__name__}: {exc}")
    conn.send(observed)
    conn.close()


async def _run(traffic: Traffic, observed: Observed, rounds: int | None = None) -> None:
    """REST and MCP clients until `traffic.seconds` have passed, or for `rounds` over every path and tool."""
    until = Until(time.monotonic() + traffic.seconds, rounds)
    headers = {"Authorization": f"Bearer {traffic.token}"}
    async with httpx.AsyncClient(base_url=traffic.base_url, headers=headers, timeout=30) as http:
        workers = [
            _rest(http, traffic.paths[i:] + traffic.paths[:i], until, observed) for i in range(REST_CLIENTS)
        ]
        await asyncio.gather(*workers, _mcp(traffic, headers, until, observed))


@dataclass(frozen=True)
class Until:
    """When a client stops: at a monotonic deadline, or after `rounds` over its paths or tools."""

    deadline: float
    rounds: int | None

    def going(self, turn: int, kinds: int) -> bool:
        """Whether the client's request number `turn` (of `kinds` different ones) is to be sent."""
        return time.monotonic() < self.deadline if self.rounds is None else turn < self.rounds * kinds


async def _follow(traffic: Traffic, observed: Observed) -> None:
    headers = {"Authorization": f"Bearer {traffic.token}"}
    async with httpx.AsyncClient(base_url=traffic.base_url, headers=headers, timeout=30) as http:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_subscribe(http, traffic.stream_model, observed), traffic.seconds)


async def _rest(http: httpx.AsyncClient, paths: tuple[str, ...], until: Until, observed: Observed) -> None:
    turn = 0
    while until.going(turn, len(paths)):
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


async def _mcp(traffic: Traffic, headers: dict[str, str], until: Until, observed: Observed) -> None:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{traffic.base_url}/mcp/", http_client=http)) as client,
    ):
        turn = 0
        while until.going(turn, len(traffic.mcp_tools)):
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
