"""The HTTP side of `coinfleet serve` and `coinfleet demo` in a child process at operator priority,
nice 19, below the lanes and the runners (`db.priority`).

Handlers run Python (validation, JSON) that would otherwise hold the event loop the lanes run on; in
their own process, at a lower priority, they get the CPU the lanes leave (measured by
`coinfleet bench api`). The child reaches what only the serving process knows through a loopback-only
endpoint of the serving process: the lanes' Prometheus registry, with a gauge saying whether every
active model has its lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import replace
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

import httpx
import structlog
import uvloop
from prometheus_client import Gauge, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from coinfleet.api.app import create_app
from coinfleet.api.server import Listening, serving
from coinfleet.api.serving import HttpOptions, api_config
from coinfleet.db.database import Database
from coinfleet.db.outage import DOWN, mirror
from coinfleet.db.priority import OPERATOR_NICENESS, lower_process, name_process
from coinfleet.errors import ConfigError
from coinfleet.lanes.serve import Companion, LanesStarted
from coinfleet.logs import configure_logging
from coinfleet.runners.child import die_with_parent

log = structlog.get_logger(__name__)
#: the HTTP process's name in ps and top
PROCESS_NAME = "coinfleet-http"
#: seconds between updates of the lanes-started gauge
READY_EVERY_SECONDS = 1.0
#: seconds the child may take to start listening (imports, pool, lifespan)
START_SECONDS = 120.0
#: seconds the child may take to stop before it is killed
STOP_SECONDS = 10.0
#: how often a starting child is checked on (alive, answered, asked to stop)
POLL_SECONDS = 0.25
#: first and longest pause before an HTTP process that died or hung is started again
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0


class HttpRefused(ConfigError):
    """The HTTP process said why it cannot serve (its port is taken, a bad setting): serve stops."""


class HttpLost(ConfigError):
    """The HTTP process died or hung: serve starts it again and the lanes go on meanwhile."""


STARTED_METRIC = "coinfleet_lanes_started"
LANES_STARTED = Gauge(STARTED_METRIC, "1 when every active model has its lane in the serving process")
WAITING_METRIC = "coinfleet_waiting_for_database"
WAITING = Gauge(
    WAITING_METRIC,
    "1 per loop of the serving process waiting out a database outage, with the error that began it",
    ["loop", "error"],
)
#: the status gauges alone, through the exposition's name filter
STATUS_QUERY = {"name[]": [STARTED_METRIC, WAITING_METRIC]}
#: longest error text passed on as a label
WAITING_ERROR_CHARS = 200


async def http_child_until(
    options: HttpOptions, db: Database, lanes_started: LanesStarted, stop: asyncio.Event
) -> None:
    """Run the HTTP side in a child process until `stop`; ConfigError when it fails to start or dies."""
    httpd, _ = start_http_server(0, addr="127.0.0.1")  # the lanes' registry, for the child only
    ready = asyncio.create_task(_keep_ready_gauge(lanes_started))
    context = get_context("spawn")  # not forked: the serving process holds threads and connections
    ours, theirs = context.Pipe(duplex=False)
    url = f"http://127.0.0.1:{httpd.server_port}/metrics"
    child = context.Process(
        target=_child_main,
        args=(replace(options, on_listening=None), db.dsn, url, theirs),
        name="coinfleet-http",
    )
    try:
        await asyncio.to_thread(child.start)
        listening = await _listening(ours, child, stop)
        if listening is None:
            return
        if options.on_listening is not None:
            options.on_listening(listening)
        ended = asyncio.create_task(asyncio.to_thread(child.join))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if ended.done():
            raise HttpLost(f"the HTTP process ended by itself (exit code {child.exitcode}); see its log")
    finally:
        ready.cancel()
        await _stop_child(child)
        httpd.shutdown()
        httpd.server_close()


async def _listening(conn: Connection, child: SpawnProcess, stop: asyncio.Event) -> Listening | None:
    """Where the child listens; None when `stop` came first. HttpRefused when the child said why it
    cannot serve (e.g. its port is taken); HttpLost when it died or did not answer in time."""
    waited = 0.0
    while not await asyncio.to_thread(conn.poll, POLL_SECONDS):
        waited += POLL_SECONDS
        if stop.is_set():
            return None
        if not child.is_alive():
            raise HttpLost(f"the HTTP process ended while starting (exit code {child.exitcode})")
        if waited >= START_SECONDS:
            raise HttpLost(f"the HTTP process did not start listening within {START_SECONDS:g} s")
    kind, *rest = conn.recv()
    if kind != "listening":
        raise HttpRefused(str(rest[0]))
    return Listening(host=rest[0], port=rest[1])


async def _stop_child(child: SpawnProcess) -> None:
    if child.pid is not None and child.is_alive():
        child.terminate()
        await asyncio.to_thread(child.join, STOP_SECONDS)
        if child.is_alive():
            child.kill()
            await asyncio.to_thread(child.join)


async def _keep_ready_gauge(lanes_started: LanesStarted) -> None:
    while True:
        publish_waiting()
        with contextlib.suppress(Exception):  # a failed check leaves the last answer; /ready reports it
            LANES_STARTED.set(1.0 if await lanes_started() else 0.0)
        await asyncio.sleep(READY_EVERY_SECONDS)


def publish_waiting() -> None:
    """Put this process's loops waiting for the database (DOWN) into the WAITING gauge."""
    WAITING.clear()
    for loop, error in dict(DOWN).items():
        WAITING.labels(loop, error[:WAITING_ERROR_CHARS]).set(1.0)


class LanesEndpoint:
    """The serving process's loopback endpoint, seen from the HTTP process."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = httpx.AsyncClient(timeout=5)

    async def exposition(self) -> bytes:
        """The lanes' metrics in Prometheus text."""
        answer = await self._client.get(self._url)
        answer.raise_for_status()
        return answer.content

    async def started(self) -> bool:
        """Whether every active model has its lane (False while the serving process cannot be asked)."""
        try:
            families = await self._status()
        except httpx.HTTPError:
            return False
        for family in families:
            if family.name == STARTED_METRIC:
                return any(sample.value == 1.0 for sample in family.samples)
        return False

    async def waiting(self) -> dict[str, str]:
        """The serving process's loops waiting for the database (loop → the error that began it)."""
        for family in await self._status():
            if family.name == WAITING_METRIC:
                return {s.labels["loop"]: s.labels["error"] for s in family.samples if s.value == 1.0}
        return {}

    async def _status(self) -> list[Metric]:
        """The two status gauges alone: asked every second, they must not render every lane's series."""
        answer = await self._client.get(self._url, params=STATUS_QUERY)
        answer.raise_for_status()
        return list(text_string_to_metric_families(answer.text))

    async def close(self) -> None:
        """Close the client."""
        await self._client.aclose()


async def mirror_waiting(lanes: LanesEndpoint, every_seconds: float = READY_EVERY_SECONDS) -> None:
    """Keep this process's DOWN showing the serving process's loops that wait for the database, so the
    HTTP process's `/ready` and health name them (until cancelled)."""
    mirrored: set[str] = set()
    while True:
        with contextlib.suppress(httpx.HTTPError):  # the serving process is away: keep what was seen
            mirrored = mirror(await lanes.waiting(), mirrored)
        await asyncio.sleep(every_seconds)


def _child_main(options: HttpOptions, dsn: str, lanes_url: str, conn: Connection) -> None:
    die_with_parent()  # a serving process killed with SIGKILL must not leave its port taken
    lower_process(OPERATOR_NICENESS)
    name_process(PROCESS_NAME)
    configure_logging(options.settings)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    uvloop.run(_child(options, dsn, lanes_url, conn))


async def _child(options: HttpOptions, dsn: str, lanes_url: str, conn: Connection) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    lanes = LanesEndpoint(lanes_url)
    config = replace(api_config(options, dsn, lanes.started), lanes_metrics=lanes.exposition)
    waiting = asyncio.create_task(mirror_waiting(lanes))
    try:
        async with serving(create_app(config, ui=options.ui), host=options.host, port=options.port) as at:
            conn.send(("listening", at.host, at.port))
            await stop.wait()
    except ConfigError as exc:
        conn.send(("failed", str(exc)))
    finally:
        waiting.cancel()
        await lanes.close()
        conn.close()


def companion(options: HttpOptions) -> Companion:
    """The HTTP side as a companion of `coinfleet serve`: in a child process of its own."""

    async def run(db: Database, lanes_started: LanesStarted, stop: asyncio.Event) -> None:
        delay = RESTART_FIRST_SECONDS
        while not stop.is_set():
            try:
                await http_child_until(options, db, lanes_started, stop)
            except HttpLost as exc:  # e.g. it could not reach the database while starting: the lanes go on
                log.warning("http_side_restarting", error=str(exc), in_seconds=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, RESTART_MAX_SECONDS)

    return run
