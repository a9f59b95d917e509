"""Reaching the database: the embedded server by default, `DATABASE_URL` otherwise."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.constants import DEFAULT_DATABASE
from coinfleet.db import embedded
from coinfleet.db.migrate import migrate
from coinfleet.db.outage import Outage, is_outage
from coinfleet.db.priority import OPERATOR_SERVER_SETTINGS
from coinfleet.errors import DatabaseError

log = structlog.get_logger(__name__)
COMMAND_TIMEOUT_SECONDS = 60  #: a statement running longer fails


@dataclass(frozen=True, kw_only=True)
class ResolvedDatabase:
    """Where the database is, and whether this process started the server behind it."""

    dsn: str
    started_embedded: bool


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database name."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_database(server_dsn: str, database: str) -> None:
    """Create `database` on the server if it does not exist yet."""
    conn = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')  # name is ours, checked by caller
            log.info("database_created", database=database)
    except asyncpg.DuplicateDatabaseError:
        pass  # another process created it at the same moment
    finally:
        await conn.close()


async def drop_database(server_dsn: str, database: str) -> None:
    """Drop `database` (closing its connections) if it exists."""
    admin = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # name is ours
    finally:
        await admin.close()


async def fresh_database(server_dsn: str, database: str) -> str:
    """An empty, migrated `database` on the server (dropped first if it existed); its DSN."""
    await drop_database(server_dsn, database)
    await ensure_database(server_dsn, database)
    dsn = with_database(server_dsn, database)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


@asynccontextmanager
async def throwaway_database(server_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A new migrated database named `prefix_<random>` on the server, dropped on exit; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = await fresh_database(server_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, name)


async def resolve(
    settings: Settings, *, start: bool = True, database: str = DEFAULT_DATABASE
) -> ResolvedDatabase:
    """Find the database: DATABASE_URL as given, else the embedded server (started if `start`)."""
    if settings.database_url:
        return ResolvedDatabase(dsn=settings.database_url, started_embedded=False)
    state = embedded.status(settings.pgdata)
    if not state.running and not start:
        raise DatabaseError(
            f"the embedded PostgreSQL in {settings.pgdata} is not running; "
            "start it with `coinfleet db start` or set DATABASE_URL"
        )
    server_dsn, started = embedded.start(settings.pgdata)
    if started:
        log.info("embedded_postgres_started", pgdata=str(settings.pgdata))
    await ensure_database(server_dsn, database)
    return ResolvedDatabase(dsn=with_database(server_dsn, database), started_embedded=started)


async def create_pool(
    dsn: str,
    *,
    max_size: int = 10,
    probe: bool = True,
    application_name: str | None = None,
    server_settings: Mapping[str, str] | None = None,
    operator: bool = False,
) -> asyncpg.Pool:
    """A connection pool; with `probe`, raises DatabaseError with the reason when the server cannot be
    reached now (without, the first use says so: the HTTP side starts during an outage and answers 503).

    No minimum size: a pool with one reconnects in the background after an outage and logs a
    traceback per try, while coinfleet's loops already say once that the database is away (released
    connections stay open for reuse all the same). `application_name` names its sessions in
    pg_stat_activity; `server_settings` apply to every connection of the pool. An `operator` pool
    carries operator traffic (`db.priority`): its sessions plan no parallel workers."""
    settings = dict(server_settings or {})
    if application_name is not None:
        settings["application_name"] = application_name
    if operator:
        settings |= OPERATOR_SERVER_SETTINGS
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=0, max_size=max_size, command_timeout=COMMAND_TIMEOUT_SECONDS, reset=_keep_session,
            server_settings=settings,
        )  # fmt: skip
        assert pool is not None
        if probe:
            async with pool.acquire():  # reachable now, or a clear error
                pass
    except (OSError, asyncpg.PostgresError) as exc:
        raise _unreachable(dsn, exc) from exc
    return pool


class OwnConnection:
    """One connection kept by one owner (a lane) instead of a pool's: no hand-off per use (asyncpg's
    acquire and release cost more CPU than a small query), and no waiting while other owners hold the
    pool's connections. A connection that broke is dropped; the next use opens a new one.

    `server_settings` apply to this connection alone, e.g. generic plans for statements whose plan
    never depends on their parameters (planning them anew cost more than running them).
    """

    def __init__(self, dsn: str, *, server_settings: dict[str, str] | None = None) -> None:
        self._dsn = dsn
        self._server_settings = server_settings or {}
        self._conn: asyncpg.Connection | None = None

    @asynccontextmanager
    async def use(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, opened first if need be; one user at a time."""
        if self._conn is None or self._conn.is_closed():
            try:
                self._conn = await asyncpg.connect(
                    self._dsn, command_timeout=COMMAND_TIMEOUT_SECONDS, server_settings=self._server_settings
                )
            except (OSError, asyncpg.PostgresError) as exc:
                raise _unreachable(self._dsn, exc) from exc
        try:
            yield self._conn
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.PostgresConnectionError):
                await self.close()
            raise
        except BaseException:  # broken, or cancelled mid-statement: its state is unknown
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection (the next use opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


async def _open_pool(dsn: str, max_size: int, run_migrations: bool, *, wait: bool) -> asyncpg.Pool:
    """A pool on a reachable, migrated database. With `wait`, while the server cannot be reached (not
    running, shutting down or starting up: `is_outage`) it is tried again with the outage backoff, said
    once in the log, instead of failing: a long-running process started while PostgreSQL restarts
    comes up when it is back. A refusal (a wrong password, no such database) fails at once either way."""
    outage = Outage("start")
    while True:
        pool: asyncpg.Pool | None = None
        try:
            pool = await create_pool(dsn, max_size=max_size)
            if run_migrations:
                async with pool.acquire() as conn:
                    await migrate(conn)
        except Exception as exc:
            if pool is not None:
                pool.terminate()
            if not (wait and _transient(exc)):
                raise
            await outage.wait(exc)
            continue
        outage.succeeded()
        return pool


def _transient(exc: BaseException) -> bool:
    """Whether a failure to open the database says it is away for now (not that it refuses us)."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else exc
    return is_outage(exc) and (cause is None or is_outage(cause))


def _unreachable(dsn: str, exc: Exception) -> DatabaseError:
    return DatabaseError(f"cannot connect to PostgreSQL ({redact(dsn)}): {exc}")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own rollback of an open transaction: nothing.

    coinfleet keeps no session state on pooled connections (no SET, LISTEN, cursors outside
    transactions or session advisory locks), so the default reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL) would only cost a round trip on every release.
    """


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, kw_only=True)
class Database:
    """An open, migrated database: its pool and its DSN (for LISTEN connections)."""

    pool: asyncpg.Pool
    dsn: str


@asynccontextmanager
async def open_database(
    settings: Settings, *, stop_on_exit: bool = True, run_migrations: bool = True, wait: bool = False
) -> AsyncIterator[Database]:
    """Resolve, migrate and pool the database. With `stop_on_exit`, the embedded server this or another
    such process started is stopped on exit, unless another process still uses it. With `wait`, a
    database that cannot be reached now (down, restarting) is waited for (see `_open_pool`)."""
    use = None if settings.database_url else await asyncio.to_thread(embedded.Use, settings.pgdata)
    try:
        target = await resolve(settings)
        if target.started_embedded and stop_on_exit:
            embedded.mark_autostop(settings.pgdata)
        pool = await _open_pool(target.dsn, settings.pool_max_size, run_migrations, wait=wait)
        try:
            yield Database(pool=pool, dsn=target.dsn)
        finally:
            await pool.close()
    finally:
        if use is not None:
            if stop_on_exit and embedded.stop_if_last(settings.pgdata, use):
                log.info("embedded_postgres_stopped", pgdata=str(settings.pgdata))
            use.close()
