"""What every page needs from the process that mounted the UI: the database pool and the settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from coinfleet.config import Settings


@dataclass(frozen=True, kw_only=True)
class UiContext:
    """Set once by `mount`; pages read it when they are built."""

    pool: Callable[[], asyncpg.Pool]  #: called per request: the app's lifespan creates the pool later
    settings: Settings
    token: str | None = None  #: when set, every page asks for this token once per browser session
    #: the lanes' Prometheus exposition when they run in another process (None: this process's registry)
    lane_metrics: Callable[[], Awaitable[bytes]] | None = None


_current: list[UiContext] = []


def install(context: UiContext) -> None:
    """Make `context` the one the pages use (mounting again replaces it)."""
    _current[:] = [context]


def current() -> UiContext:
    """The context `mount` installed."""
    if not _current:
        raise RuntimeError("coinfleet.ui.mount(app, ...) has not been called in this process")
    return _current[0]


def pool() -> asyncpg.Pool:
    """The database pool of the serving process."""
    return current().pool()
