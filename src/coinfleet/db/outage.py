"""Riding out database outages: long-running loops wait with capped backoff, log once, and never exit.

stamina retries one call until it succeeds or gives up; the loops here never give up and have more to
do than retry (a lane also reloads its cursor, the notifier re-subscribes), so each loop keeps an
`Outage` that paces its retries and says once that the database is away and once that it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import structlog

from coinfleet.errors import DatabaseError

log = structlog.get_logger(__name__)
#: what the database being away (or going away mid-statement) raises; TimeoutError is an OSError.
#: asyncpg raises InternalClientError ("cannot switch to state …") from a connection whose server went
#: away in the middle of an operation; the pool terminates that connection, so a retry gets a new one.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    DatabaseError,
)
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
#: loops now waiting for the database, by name (what /ready and `health` report)
DOWN: dict[str, str] = {}


def mirror(remote: dict[str, str], mirrored: set[str]) -> set[str]:
    """Show another process's loops waiting for the database in this one's DOWN (the HTTP process of
    `coinfleet serve` answers `/ready` for the lanes' process): entries mirrored before that are gone
    now are dropped. Returns the names mirrored now (pass them to the next call)."""
    for name in mirrored - remote.keys():
        DOWN.pop(name, None)
    DOWN.update(remote)
    return set(remote)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is unreachable rather than a statement being wrong."""
    return isinstance(exc, DATABASE_ERRORS)


class Outage:
    """One loop's view of the database: backoff while it is away, one log line when it goes and one
    when it is back."""

    def __init__(
        self, name: str, *, first: float = FIRST_BACKOFF_SECONDS, cap: float = MAX_BACKOFF_SECONDS
    ) -> None:
        self.name = name
        self._first = first
        self._cap = cap
        self._failures = 0  #: in a row
        self._since: float | None = None  #: monotonic time the outage began
        self.outages = 0  #: outages seen (for tests and health)

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; return the seconds to wait before the next one (doubling, capped)."""
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self.outages += 1
            DOWN[self.name] = f"{type(exc).__name__}: {exc}"
            log.warning("database_unreachable", loop=self.name, error=DOWN[self.name])
        return min(self._cap, self._first * 2.0 ** (self._failures - 1))

    def succeeded(self) -> None:
        """Record a working attempt; the first after an outage says how long it lasted."""
        if self._since is not None:
            seconds = round(time.monotonic() - self._since, 1)
            log.info("database_back", loop=self.name, seconds=seconds, attempts=self._failures)
            DOWN.pop(self.name, None)
        self._since = None
        self._failures = 0

    async def wait(self, exc: BaseException, stop: asyncio.Event | None = None) -> None:
        """`failed`, then sleep its backoff (cut short when `stop` is set)."""
        seconds = self.failed(exc)
        if stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
