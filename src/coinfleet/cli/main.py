"""The `coinfleet` command."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import typer

from coinfleet import __version__
from coinfleet.api.process import companion
from coinfleet.api.serving import serve_api
from coinfleet.cli import alerts, bench, db, feed, models
from coinfleet.cli.backtest import backtest
from coinfleet.cli.common import run
from coinfleet.cli.demo import demo
from coinfleet.cli.errors import guarded
from coinfleet.cli.http import HOST_OPTION, PORT_OPTION, http_options, print_urls
from coinfleet.cli.predecessor import migrate_from_pump_server_command
from coinfleet.cli.stats import stats
from coinfleet.cli.train import train
from coinfleet.config import Settings

#: what scores the events: the lanes, or the sequential benchmark baseline
Scheduler = Literal["lanes", "sequential"]
app = typer.Typer(
    rich_markup_mode=None,
    help="coinfleet: real-time predictions for pump.fun coins, one isolated lane per model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"coinfleet {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an error (also COINFLEET_LOG_LEVEL=debug)."
    ),
) -> None:
    """coinfleet: real-time predictions for pump.fun coins, one isolated lane per model."""


app.add_typer(db.app, name="db")
app.add_typer(models.app, name="models")
app.add_typer(alerts.app, name="alerts")
app.add_typer(bench.app, name="bench")
app.command()(demo)
app.command()(feed.replay)
app.command()(feed.simulate)
app.command()(train)
app.command()(stats)
app.command()(backtest)
app.command("migrate-from-pump-server")(migrate_from_pump_server_command)


@app.command()
def serve(
    scheduler: Scheduler = typer.Option(
        "lanes", help="lanes: one isolated lane per model. sequential: the predecessor's loop (a baseline)."
    ),
    host: str | None = HOST_OPTION,
    port: int | None = PORT_OPTION,
    http: bool = typer.Option(True, help="Serve the API, UI, MCP and /metrics over HTTP too."),
) -> None:
    """Run every active model, and the HTTP side, until stopped (Ctrl-C or SIGTERM)."""
    from coinfleet.bench.sequential import serve_sequential
    from coinfleet.lanes.serve import serve as serve_service

    side = companion(replace(http_options(host, port), on_listening=print_urls)) if http else None

    async def service(settings: Settings) -> None:
        scoring = serve_sequential if scheduler == "sequential" else None
        await serve_service(settings, scoring=scoring, companion=side)

    run(service)


@app.command()
def api(host: str | None = HOST_OPTION, port: int | None = PORT_OPTION) -> None:
    """Serve only the HTTP side (API, UI, MCP, /metrics) against the database; lanes run elsewhere."""
    options = replace(http_options(host, port), on_listening=print_urls)

    async def service(settings: Settings) -> None:
        await serve_api(settings, options)

    run(service)


@app.command()
def worker() -> None:
    """Run lanes, evaluation and alert delivery, no HTTP; start one per machine (or several), all on
    one DATABASE_URL, and the models spread over them."""
    from coinfleet.lanes.worker import work

    run(work)


def main() -> None:
    """The console entry point: the CLI with every error as one line (see `coinfleet.cli.errors`)."""
    guarded(app)
