"""uvicorn inside an event loop that runs other work too (the lanes of `coinfleet serve`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from coinfleet.errors import ConfigError

#: seconds uvicorn waits for open connections (e.g. live streams) when stopping
GRACEFUL_SECONDS = 2


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that embeds it decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Leave the process's signal handlers alone."""
        yield


@dataclass(frozen=True, kw_only=True)
class Listening:
    """Where the server listens once started."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        """http://host:port (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serving(app: FastAPI, *, host: str, port: int) -> AsyncIterator[Listening]:
    """Serve `app` on host:port (0: any free port) until the block ends."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS, ws="none",
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if task.done():
            with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
                await task
            raise ConfigError(
                f"the HTTP server could not listen on {host}:{port} "
                "(port in use, or the app failed to start: see the log)"
            )
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield Listening(host=host, port=int(bound[1]))
    finally:
        server.should_exit = True
        await task
