"""A real coinfleet HTTP server on a free loopback port, for API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from coinfleet.api import ApiConfig, create_app
from coinfleet.api.health import LanesStarted
from coinfleet.api.server import serving
from coinfleet.config import Settings

TOKEN = "test-token-0123456789"


@dataclass(frozen=True, kw_only=True)
class RunningApi:
    """A served app: its URL, a client with the token, and one without."""

    base_url: str
    client: httpx.AsyncClient  #: sends the token
    anonymous: httpx.AsyncClient  #: sends none


@asynccontextmanager
async def running_api(
    dsn: str,
    *,
    reads_need_token: bool = False,
    lanes_started: LanesStarted | None = None,
    stream_queue: int = 1000,
    settings: Settings | None = None,
) -> AsyncIterator[RunningApi]:
    """create_app served by uvicorn on 127.0.0.1 (any free port) until the block ends."""
    config = ApiConfig(
        dsn=dsn, token=TOKEN, reads_need_token=reads_need_token, lanes_started=lanes_started,
        stream_queue=stream_queue, settings=settings or Settings(),
    )  # fmt: skip
    async with serving(create_app(config), host="127.0.0.1", port=0) as listening:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx.AsyncClient(base_url=listening.base_url, headers=headers, timeout=30) as client,
            httpx.AsyncClient(base_url=listening.base_url, timeout=30) as anonymous,
        ):
            yield RunningApi(base_url=listening.base_url, client=client, anonymous=anonymous)
