"""Helpers shared by the CLI commands: settings, the event loop, errors as clean exits, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import typer
import uvloop
from rich.console import Console

from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import Database, open_database
from coinfleet.logs import configure_logging
from coinfleet.service.common import Db

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    """Read settings once and set up logging."""
    settings = Settings()
    configure_logging(settings)
    return settings


def run(service: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one async service function on uvloop; a CoinfleetError reaches the entry point
    (`coinfleet.cli.errors.guarded`), which prints it as one line."""
    settings = load_settings()
    try:
        return uvloop.run(service(settings))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@asynccontextmanager
async def short_command_database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Database]:
    """The database for a command that ends; an embedded server it started keeps running for the next
    command, and the user is told so once."""
    was_running = settings.database_url is not None or embedded.status(settings.pgdata).running
    async with open_database(settings, stop_on_exit=False, run_migrations=migrate) as db:
        if not was_running:
            err_console.print(
                f"started the embedded PostgreSQL in {settings.pgdata}; it keeps running for the next"
                " commands — `coinfleet db stop` stops it",
                highlight=False,
            )
        yield db


@asynccontextmanager
async def connection(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Db]:
    """One connection for a short command's service calls (the embedded server keeps running)."""
    async with short_command_database(settings, migrate=migrate) as db, db.pool.acquire() as conn:
        yield conn


def print_json(data: Any) -> None:
    """One JSON object on one line of stdout."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
