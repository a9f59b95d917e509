"""The HTTP side in a process: beside the lanes (`coinfleet serve`, `coinfleet demo`) or alone
(`coinfleet api`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from coinfleet.api.app import ApiConfig, UiMount, create_app
from coinfleet.api.auth import is_loopback
from coinfleet.api.health import LanesStarted
from coinfleet.api.server import Listening, serving
from coinfleet.config import Settings
from coinfleet.db.database import Database, open_database
from coinfleet.db.priority import OPERATOR_NICENESS, lower_process

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class HttpOptions:
    """Where to listen, with which token, and what to attach."""

    host: str
    port: int
    token: str
    stream_queue: int = 1000
    pool_size: int = 2
    settings: Settings = field(default_factory=Settings)  #: webhook defaults and the SSRF rule
    ui: UiMount | None = None
    on_listening: Callable[[Listening], None] | None = None  #: told the address once it listens

    @classmethod
    def from_settings(cls, settings: Settings, token: str, **changes: object) -> HttpOptions:
        """Host, port, queue and pool sizes from the settings."""
        values: dict[str, object] = {
            "host": settings.api_host, "port": settings.api_port, "token": token, "settings": settings,
            "stream_queue": settings.api_stream_queue, "pool_size": settings.api_pool_size,
        }  # fmt: skip
        values.update(changes)
        return cls(**values)  # type: ignore[arg-type]


def api_config(options: HttpOptions, dsn: str, lanes_started: LanesStarted | None) -> ApiConfig:
    """The app's configuration: reads need the token as soon as it listens beyond loopback."""
    return ApiConfig(
        dsn=dsn,
        token=options.token,
        reads_need_token=not is_loopback(options.host),
        stream_queue=options.stream_queue,
        pool_size=options.pool_size,
        lanes_started=lanes_started,
        mcp_allowed_hosts=allowed_hosts(options.host),
        settings=options.settings,
    )


def allowed_hosts(host: str) -> tuple[str, ...]:
    """Host headers the MCP endpoint accepts (its DNS-rebinding guard): loopback names and the bound host."""
    names = {"127.0.0.1:*", "localhost:*", "[::1]:*"}
    if host not in ("0.0.0.0", "::"):
        names.add(f"{host}:*")
    return tuple(sorted(names))


async def http_until(
    options: HttpOptions, db: Database, lanes_started: LanesStarted | None, stop: asyncio.Event
) -> None:
    """Serve HTTP until `stop` is set."""
    app = create_app(api_config(options, db.dsn, lanes_started), ui=options.ui)
    async with serving(app, host=options.host, port=options.port) as listening:
        log.info("http_listening", url=listening.base_url)
        if options.on_listening is not None:
            options.on_listening(listening)
        await stop.wait()


async def serve_api(settings: Settings, options: HttpOptions) -> None:
    """`coinfleet api`: the HTTP side alone against the configured database, until SIGINT or SIGTERM.
    Started while the database cannot be reached, it waits for it before listening (as `serve` does).
    At operator priority like the HTTP process of `serve` (set after the database is reached: an
    embedded server started from here must not inherit it)."""
    async with open_database(settings, wait=True) as db:
        lower_process(OPERATOR_NICENESS)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await http_until(options, db, None, stop)
