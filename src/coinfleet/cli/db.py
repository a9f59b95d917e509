"""`coinfleet db …`: the embedded PostgreSQL server and migrations."""

from __future__ import annotations

import typer

from coinfleet.cli.common import connection, console, load_settings, print_json, run
from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import redact, resolve
from coinfleet.db.migrate import available, migrate
from coinfleet.service.health import ping

app = typer.Typer(help="The database: embedded server and migrations.", no_args_is_help=True)


@app.command()
def start() -> None:
    """Start the embedded PostgreSQL (or attach to the running one) and migrate."""

    async def service(settings: Settings) -> None:
        async with connection(settings) as db:
            await ping(db)
        console.print(f"embedded PostgreSQL running in {settings.pgdata}")

    _require_embedded()
    run(service)


@app.command()
def stop() -> None:
    """Stop the embedded PostgreSQL."""
    settings = _require_embedded()
    stopped = embedded.stop(settings.pgdata)
    console.print("stopped" if stopped else "was not running")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Show where the database is and whether it runs."""
    settings = load_settings()
    data: dict[str, object]
    if settings.database_url:
        data = {"mode": "external", "url": redact(settings.database_url)}
    else:
        state = embedded.status(settings.pgdata)
        data = {
            "mode": "embedded",
            "pgdata": str(state.pgdata),
            "initialised": state.initialised,
            "running": state.running,
            "pid": state.pid,
        }
    if as_json:
        print_json(data)
    else:
        for key, value in data.items():
            console.print(f"{key:12} {value}")


@app.command("migrate")
def migrate_command() -> None:
    """Apply the migrations that are not applied yet."""

    async def service(settings: Settings) -> list[int]:
        async with connection(settings, migrate=False) as conn:
            return await migrate(conn)

    run(service)
    console.print(f"schema at version {available()[-1].version}")


@app.command()
def url() -> None:
    """Print the database URL (starting the embedded server if needed)."""

    async def service(settings: Settings) -> str:
        return (await resolve(settings)).dsn

    print(run(service))


def _require_embedded() -> Settings:
    settings = load_settings()
    if settings.database_url:
        console.print("DATABASE_URL is set: coinfleet uses that server, not the embedded one.")
        raise typer.Exit(1)
    return settings
