"""The MCP server (streamable HTTP at /mcp): tools over the same service functions as the REST API.

Every tool needs the API's bearer token (the MCP endpoint serves writes, so loopback is no excuse).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from coinfleet import __version__
from coinfleet.api.auth import TokenCheck
from coinfleet.api.errors import error_response
from coinfleet.api.health import LanesStarted, Readiness, check_readiness
from coinfleet.api.state import Shared
from coinfleet.errors import CoinfleetError
from coinfleet.service import model_admin
from coinfleet.service.scoring import CoinScore

INSTRUCTIONS = (
    "coinfleet scores pump.fun coins with several ML models in real time. Probabilities are 0..1; "
    "times are ISO 8601 UTC; prices are in SOL; percentages are percent (5 = 5 %)."
)
P = ParamSpec("P")
R = TypeVar("R")
ModelName = Annotated[str, Field(description="the model's name, as `models_list` shows it")]


def clear_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """coinfleet's errors reach the client as the tool's error message (not a logged crash)."""

    @functools.wraps(tool)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except CoinfleetError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def build_mcp(shared: Shared, lanes_started: LanesStarted | None) -> MCPServer:
    """The MCP server with every tool; `shared` gives the pool and scorer once the app started."""
    server = MCPServer("coinfleet", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool()
    @clear_errors
    async def health() -> Readiness:
        """Whether the server is ready: database reachable, migrations current, lanes started."""
        return await check_readiness(shared.pool, lanes_started)

    @server.tool()
    @clear_errors
    async def score_coin(
        mint: Annotated[str, Field(description="the coin's mint address")],
        at: Annotated[
            datetime | None,
            Field(description="score the coin's row at or before this time (UTC); default: its newest row"),
        ] = None,
        models: Annotated[
            list[str] | None, Field(description="model names; default: every active model")
        ] = None,
    ) -> CoinScore:
        """Score one coin now (or at a past time) with each model: probability 0..1 and tag
        (negative / positive / alert). Stores nothing."""
        return await shared.scorer.score(mint, at=at, models=models)

    @server.tool()
    @clear_errors
    async def model_rename(
        name: ModelName, new_name: Annotated[str, Field(description="1-64 letters, digits, '_', '.', '-'")]
    ) -> dict[str, Any]:
        """Rename a model (running lanes follow). Returns the model's id and new name."""
        model = await model_admin.rename_model(shared.pool, name, new_name)
        return {"id": model.id, "name": model.name}

    return server


class RequireToken:
    """ASGI middleware: 401 unless the request carries the bearer token."""

    def __init__(self, app: ASGIApp, check: TokenCheck) -> None:
        self._app = app
        self._check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authorised HTTP requests on; answer others with a JSON 401."""
        if scope["type"] == "http" and not self._check.matches(_bearer(scope)):
            message = "the MCP endpoint needs the header 'Authorization: Bearer <token>' with the API token"
            await error_response(401, message)(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def mcp_app(server: MCPServer, check: TokenCheck, allowed_hosts: tuple[str, ...]) -> ASGIApp:
    """The streamable HTTP app to mount at /mcp, behind the token check."""
    security = TransportSecuritySettings(allowed_hosts=list(allowed_hosts), allowed_origins=[])
    return RequireToken(
        server.streamable_http_app(streamable_http_path="/", transport_security=security), check
    )
