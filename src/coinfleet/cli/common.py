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
from coinfleet.db.database import open_database
from coinfleet.errors import CoinfleetError
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
    """Run one async service function on uvloop; a CoinfleetError becomes a one-line message and exit
    code 1."""
    settings = load_settings()
    try:
        return uvloop.run(service(settings))
    except CoinfleetError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@asynccontextmanager
async def connection(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Db]:
    """One connection for a short command's service calls (the embedded server keeps running)."""
    async with (
        open_database(settings, stop_on_exit=False, run_migrations=migrate) as db,
        db.pool.acquire() as conn,
    ):
        yield conn


def print_json(data: Any) -> None:
    """One JSON object on one line of stdout."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
