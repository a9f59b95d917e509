"""`/health` (the process answers) and `/ready` (database, migrations, lanes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from coinfleet.api.state import shared
from coinfleet.db.migrate import pending
from coinfleet.db.outage import DOWN

router = APIRouter(tags=["health"])
#: seconds the readiness probe waits for the database
READY_TIMEOUT_SECONDS = 2.0
#: answers whether every active model has its lane in this process (None: no lanes here)
LanesStarted = Callable[[], Awaitable[bool]]


class Health(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Each readiness check and the verdict."""

    ready: bool
    database: bool  #: a query answered
    migrations_current: bool  #: every shipped migration is applied
    pending_migrations: list[int]
    lanes: Literal["started", "starting", "not_served_here"]  #: lanes of this process
    message: str
    #: this process's loops waiting out a database outage (loop → the error that began it)
    waiting_for_database: dict[str, str] = {}


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Health:
    """Always 200 while the process serves requests."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Ready to serve: database reachable, migrations current, lanes started",
    responses={503: {"model": Readiness, "description": "not ready; the body says which check failed"}},
)
async def ready(request: Request) -> JSONResponse:
    """200 when every check passes, 503 with the failing check otherwise."""
    lanes_started: LanesStarted | None = request.app.state.lanes_started
    readiness = await check_readiness(shared(request).pool, lanes_started)
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


async def check_readiness(pool: asyncpg.Pool, lanes_started: LanesStarted | None) -> Readiness:
    """Run the three checks."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), pool.acquire() as conn:
            missing = await pending(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return Readiness(
            ready=False, database=False, migrations_current=False, pending_migrations=[],
            lanes="not_served_here", message=f"database unreachable: {exc}",
            waiting_for_database=dict(DOWN),
        )  # fmt: skip
    lanes: Literal["started", "starting", "not_served_here"] = "not_served_here"
    if lanes_started is not None:
        lanes = "started" if await lanes_started() else "starting"
    waiting = dict(DOWN)
    ok = not missing and lanes != "starting" and not waiting
    message = "ready" if ok else ("migrations pending" if missing else "lanes starting")
    if waiting and not missing:
        message = f"{len(waiting)} loop(s) still waiting for the database: {', '.join(sorted(waiting))}"
    return Readiness(
        ready=ok, database=True, migrations_current=not missing, pending_migrations=missing,
        lanes=lanes, message=message, waiting_for_database=waiting,
    )  # fmt: skip
