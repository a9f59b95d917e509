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
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from coinfleet import __version__
from coinfleet.api.auth import TokenCheck
from coinfleet.api.errors import error_response
from coinfleet.api.health import LanesStarted, Readiness, check_readiness
from coinfleet.api.state import Shared
from coinfleet.config import Settings
from coinfleet.errors import CoinfleetError
from coinfleet.service import alerts, coins, models, predictions, quality, stats, versions
from coinfleet.service import health as health_service
from coinfleet.service.schemas import (
    MAX_PAGE_SIZE,
    AlertPage,
    AlertQuery,
    AlertState,
    CalibrationReport,
    CoinDetail,
    DriftReport,
    EvaluationState,
    Health,
    LagReport,
    Model,
    PredictionPage,
    PredictionQuery,
    StatisticsReport,
    Tag,
)
from coinfleet.service.scoring import CoinScore
from coinfleet.service.stats import parse_since
from coinfleet.service.versions import VersionInfo, VersionScore

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


def build_mcp(shared: Shared, lanes_started: LanesStarted | None, settings: Settings) -> MCPServer:
    """The MCP server with every tool; `shared` gives the pool and scorer once the app started."""
    server = MCPServer("coinfleet", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    _model_tools(server, shared, settings)
    _data_tools(server, shared, lanes_started)
    _alert_tools(server, shared, settings)
    return server


def _model_tools(server: MCPServer, shared: Shared, settings: Settings) -> None:
    @server.tool()
    @clear_errors
    async def models_list() -> list[Model]:
        """Every model (not deleted) with status, target, settings and its lane: lag in events and
        seconds, stored predictions, pending and dead alerts."""
        return await models.list_models(shared.pool)

    @server.tool()
    @clear_errors
    async def model_details(name: ModelName) -> Model:
        """One model: algorithm, features, target (direction, % change, horizon in seconds), settings
        (webhook secret hidden), training metrics and lane state."""
        return await models.show_model(shared.pool, name)

    @server.tool()
    @clear_errors
    async def model_activate(name: ModelName) -> Model:
        """Start scoring new events with the model (running servers pick it up within a second)."""
        return await models.activate_model(shared.pool, name)

    @server.tool()
    @clear_errors
    async def model_deactivate(name: ModelName) -> Model:
        """Stop scoring with the model; its stored predictions stay."""
        return await models.deactivate_model(shared.pool, name)

    @server.tool()
    @clear_errors
    async def model_resume(name: ModelName) -> Model:
        """Bring a quarantined model back; it continues at its cursor, nothing was lost."""
        return await models.resume_model(shared.pool, name)

    @server.tool()
    @clear_errors
    async def model_rename(
        name: ModelName, new_name: Annotated[str, Field(description="1-64 letters, digits, '_', '.', '-'")]
    ) -> Model:
        """Rename a model (running lanes follow)."""
        return await versions.rename_model(shared.pool, name, new_name)

    @server.tool()
    @clear_errors
    async def model_settings_update(
        name: ModelName,
        changes: Annotated[
            dict[str, Any],
            Field(
                description='setting → value, e.g. {"alert_threshold": 0.8, "min_scan_interval_seconds": 30}'
            ),
        ],
    ) -> Model:
        """Change settings with the CLI's validation (alert_threshold 0.5..1, seconds ≥ 0, weight > 0,
        phases, coin lists, webhook); applies live. An invalid value changes nothing."""
        return await models.update_settings(
            shared.pool, name, changes, allow_private=settings.webhook_allow_private
        )

    _version_tools(server, shared)


def _version_tools(server: MCPServer, shared: Shared) -> None:
    @server.tool()
    @clear_errors
    async def model_versions(name: ModelName) -> list[VersionInfo]:
        """Every stored version of a model, oldest first: algorithm, format, target, features, file
        sha256; `serving` marks the one scoring now."""
        return await versions.version_infos(shared.pool, name)

    @server.tool()
    @clear_errors
    async def model_promote(
        name: ModelName, version: Annotated[int, Field(ge=1, description="a version model_versions lists")]
    ) -> Model:
        """Serve another version of the model: a newer one, its shadow's, or an older one (a rollback).
        The lane restarts at the model's cursor; no event is lost or scored twice."""
        return await versions.promote(shared.pool, name, version)

    @server.tool()
    @clear_errors
    async def model_compare(name: ModelName) -> list[VersionScore]:
        """The live version beside its shadow on the events both scored: hit rate and alert precision
        (0..1), mean alert gain in %. An error when the model has no shadow."""
        return await versions.compare(shared.pool, name)


def _data_tools(server: MCPServer, shared: Shared, lanes_started: LanesStarted | None) -> None:
    @server.tool()
    @clear_errors
    async def predictions_list(
        model: Annotated[str | None, Field(description="model name")] = None,
        mint: Annotated[str | None, Field(description="coin mint address")] = None,
        tag: Annotated[
            Tag | None, Field(description="negative (p < 0.5), positive, or alert (p ≥ threshold)")
        ] = None,
        state: Annotated[
            EvaluationState | None, Field(description="waiting (no outcome yet) or evaluated")
        ] = None,
        probability_min: Annotated[
            float | None, Field(ge=0, le=1, description="lowest probability, 0..1")
        ] = None,
        since: Annotated[datetime | None, Field(description="metric time at or after (UTC)")] = None,
        until: Annotated[datetime | None, Field(description="metric time before (UTC)")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="rows per page")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
    ) -> PredictionPage:
        """Stored predictions, newest first, with probability (0..1), tag, evaluation window (metric_ts to
        evaluate_at) and outcome (change in %) once evaluated; one page per call. A page examines at most
        200,000 stored predictions (the model's, when named): a filter matching few rows can give a short
        or empty page with searched_to_time (how far back it looked) and a next_cursor that searches
        further back."""
        wanted = PredictionQuery(
            model=model, mint=mint, tag=tag, state=state, probability_min=probability_min,
            since=since, until=until, limit=limit, cursor=cursor,
        )  # fmt: skip
        return await predictions.list_predictions(shared.pool, wanted)

    @server.tool()
    @clear_errors
    async def coin_detail(
        mint: Annotated[str, Field(description="coin mint address")],
        since: Annotated[datetime | None, Field(description="window start (UTC)")] = None,
        until: Annotated[datetime | None, Field(description="window end, exclusive (UTC)")] = None,
    ) -> CoinDetail:
        """A coin's metric rows (prices in SOL, newest 5,000 in the window) and each model's predictions,
        evaluation windows and alerts for it."""
        return await coins.coin_detail(shared.pool, mint, since=since, until=until)

    @server.tool()
    @clear_errors
    async def statistics(
        since: Annotated[str | None, Field(description="1h, 24h, 30m, 7d, an ISO time, or all")] = None,
        model: Annotated[str | None, Field(description="only this model")] = None,
    ) -> StatisticsReport:
        """Per model and across models: predictions by tag, hit rates (0..1) at the horizon end and within
        the horizon, alert precision (0..1), average and median alert gain in %."""
        return await stats.statistics(shared.pool, since=parse_since(since), model=model)

    @server.tool()
    @clear_errors
    async def calibration(
        since: Annotated[str | None, Field(description="1h, 24h, 30m, 7d, an ISO time, or all")] = None,
        model: Annotated[str | None, Field(description="only this model")] = None,
    ) -> list[CalibrationReport]:
        """Per model, over judged predictions: Brier score (mean (p − label)², 0 is perfect), base rate
        (0..1) and a reliability table (probability bucket → observed hit rate, 0..1)."""
        return await quality.calibration(shared.pool, since=parse_since(since), model=model)

    @server.tool()
    @clear_errors
    async def drift(
        model: Annotated[str | None, Field(description="only this model")] = None,
    ) -> list[DriftReport]:
        """Per model, each feature's PSI (population stability index; above the threshold counts as
        drifted) of the last hours of scored rows against the training sample, worst first."""
        return await quality.drift(shared.pool, model=model)

    @server.tool()
    @clear_errors
    async def lag() -> LagReport:
        """How far each model is behind: events and seconds; and the age in seconds of the transaction
        holding every lane back (the event horizon)."""
        return await models.lag(shared.pool)

    @server.tool()
    @clear_errors
    async def health() -> Health:
        """ok / degraded / down with one sentence per problem (quarantined models, a stuck horizon,
        dead alerts), models by status."""
        return await health_service.health(shared.pool)

    @server.tool()
    @clear_errors
    async def ready() -> Readiness:
        """Whether this server is ready: database reachable, migrations current, lanes started."""
        return await check_readiness(shared.pool, lanes_started)

    @server.tool()
    @clear_errors
    async def score_coin(
        mint: Annotated[str, Field(description="the coin's mint address")],
        at: Annotated[
            datetime | None, Field(description="its row at or before this time (UTC); default: newest")
        ] = None,
        models: Annotated[
            list[str] | None, Field(description="model names; default: every active model")
        ] = None,
    ) -> CoinScore:
        """Score one coin now (or at a past time) with each model: probability 0..1 and tag
        (negative / positive / alert). Stores nothing."""
        return await shared.scorer.score(mint, at=at, models=models)


def _alert_tools(server: MCPServer, shared: Shared, settings: Settings) -> None:
    @server.tool()
    @clear_errors
    async def alerts_list(
        model: Annotated[str | None, Field(description="model name")] = None,
        state: Annotated[AlertState | None, Field(description="pending, delivered or dead")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="rows per page")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
    ) -> AlertPage:
        """Webhook alerts in the outbox, newest first: state, attempts, last HTTP status and error."""
        wanted = AlertQuery(model=model, state=state, limit=limit, cursor=cursor)
        return await alerts.list_alerts(shared.pool, wanted)

    @server.tool()
    @clear_errors
    async def alert_retry(alert_id: Annotated[int, Field(ge=1, description="the alert's id")]) -> Retried:
        """Put one dead alert back in the delivery queue (to its model's current webhook URL)."""
        count = await alerts.retry_alert(shared.pool, alert_id, default_url=settings.default_webhook_url)
        return Retried(retried=count)

    @server.tool()
    @clear_errors
    async def alerts_retry_dead(model: ModelName) -> Retried:
        """Put every dead alert of the model back in the delivery queue."""
        count = await alerts.retry_dead_alerts(shared.pool, model, default_url=settings.default_webhook_url)
        return Retried(retried=count)


class Retried(BaseModel):
    """How many dead alerts went back into the queue."""

    retried: int


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
