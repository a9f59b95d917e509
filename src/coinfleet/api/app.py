"""The HTTP side of coinfleet: REST under /api, the live stream, MCP at /mcp, /metrics, health.

`create_app` builds it; its lifespan owns what the requests share (a pool of its own, so operator
traffic never takes the lanes' connections, and the stream's LISTEN connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI
from mcp.server.mcpserver import MCPServer

from coinfleet import __version__
from coinfleet.api import errors, health, metrics, stream_routes
from coinfleet.api.auth import TokenCheck, require_read
from coinfleet.api.health import LanesStarted
from coinfleet.api.mcp_tools import build_mcp, mcp_app
from coinfleet.api.routes import alerts, data, models, versions
from coinfleet.api.state import Shared
from coinfleet.api.stream import StreamHub
from coinfleet.config import Settings
from coinfleet.db.database import create_pool

#: the place where the web UI attaches itself to the app (it gets the app after every API route exists)
UiMount = Callable[[FastAPI], None]


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """What the HTTP side needs."""

    dsn: str  #: the database (its own pool is opened from this)
    token: str  #: the bearer token
    reads_need_token: bool  #: True when listening beyond loopback
    pool_size: int = 2  #: connections of the API's own pool (its queries use at most this many cores)
    stream_queue: int = 1000  #: events one stream client may have waiting before it is cut off
    lanes_started: LanesStarted | None = None  #: set by a process that runs lanes too
    mcp_allowed_hosts: tuple[str, ...] = ("127.0.0.1:*", "localhost:*")  #: Host headers MCP accepts
    settings: Settings = field(default_factory=Settings)  #: webhook defaults and the SSRF rule
    #: the lanes' metrics when they run in another process (None: this process's registry)
    lanes_metrics: Callable[[], Awaitable[bytes]] | None = None


def _lifespan(config: ApiConfig, mcp: MCPServer) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # probe=False: it starts during an outage too
        pool = await create_pool(
            config.dsn, max_size=config.pool_size, probe=False, application_name="coinfleet-api",
            operator=True,
        )  # fmt: skip
        hub = StreamHub(dsn=config.dsn, pool=pool, queue_size=config.stream_queue)
        app.state.shared.open(pool, hub, future_tolerance_seconds=config.settings.future_tolerance_seconds)
        app.state.pool = pool  # what a mounted UI reads by default
        try:
            await hub.start()
            async with mcp.session_manager.run():  # Starlette runs no lifespan of mounted apps
                yield
        finally:
            app.state.metrics.close()
            app.state.shared.close()
            await hub.close()
            await pool.close()

    return lifespan


def create_app(config: ApiConfig, *, ui: UiMount | None = None) -> FastAPI:
    """The FastAPI app; `ui` (coinfleet.ui.mount) is attached last, after every API route."""
    shared = Shared()
    mcp = build_mcp(shared, config.lanes_started, config.settings)
    check = TokenCheck(token=config.token, reads_need_token=config.reads_need_token)
    mounted_mcp = mcp_app(mcp, check, config.mcp_allowed_hosts)  # makes mcp.session_manager
    app = FastAPI(
        title="coinfleet",
        version=__version__,
        description="Operator API of coinfleet: models, predictions, coins, statistics, alerts, live stream.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=_lifespan(config, mcp),
    )
    app.state.shared = shared
    app.state.settings = config.settings
    app.state.token_check = check
    app.state.lanes_started = config.lanes_started
    app.state.lanes_metrics = config.lanes_metrics  # what the UI's lane page reads
    app.state.metrics = metrics.Snapshots(lambda: metrics.exposition(shared.pool, config.lanes_metrics))
    errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router, dependencies=[Depends(require_read)], responses=errors.ERROR_RESPONSES)
    for router in (models.router, versions.router, data.router, alerts.router, stream_routes.router):
        app.include_router(router, responses=errors.ERROR_RESPONSES)
    app.mount("/mcp", mounted_mcp)
    # the one place the web UI is mounted (NiceGUI wraps the lifespan set above, so it comes last)
    if ui is not None:
        ui(app)
    return app
