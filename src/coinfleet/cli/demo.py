"""`coinfleet demo`: the live table and the summary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from coinfleet.cli.common import console, err_console, print_json, run
from coinfleet.cli.feed import load_recorded
from coinfleet.cli.http import HOST_OPTION, PORT_OPTION, http_options, print_urls
from coinfleet.config import Settings
from coinfleet.demo import DemoOptions, DemoSnapshot, data_key_for, run_demo


def render(snapshot: DemoSnapshot) -> Table:
    """One row per model: events, lag, predictions by tag, last probability."""
    state = "feeding" if snapshot.feeding else "done"
    table = Table(title=f"coinfleet demo — {snapshot.events} metric rows, {snapshot.elapsed:.0f}s, {state}")
    columns = ("model", "target", "events", "lag", "neg", "pos", "alert", "last p", "err", "Brier val/live")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "target") else "right")
    for m in snapshot.models:
        table.add_row(
            m.name,
            m.target,
            str(m.events),
            str(m.lag_events),
            str(m.predictions.get("negative", 0)),
            str(m.predictions.get("positive", 0)),
            str(m.predictions.get("alert", 0)),
            "-" if m.last_probability is None else f"{m.last_probability:.3f}",
            str(m.errors),
            f"{_brier(m.brier_validation)}/{_brier(m.brier_live)}",
        )
    return table


def _brier(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def demo(
    duration: float | None = typer.Option(
        None, min=1, help="Stop after this many seconds (default: when the replay ends; 60 s simulated)."
    ),
    data: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Replay this recorded file instead of the simulator."
    ),
    speed: float | None = typer.Option(
        None, min=0.01, help="Replay speed (default: fit the file into the run)."
    ),
    coins: int = typer.Option(60, min=1, help="Simulated coins at the start."),
    seed: int = typer.Option(7, help="Simulator seed."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON summary line on stdout."),
    http: bool = typer.Option(True, help="Serve the API, UI, MCP and /metrics while the demo runs."),
    host: str | None = HOST_OPTION,
    port: int | None = PORT_OPTION,
) -> None:
    """Start the embedded database, feed a market, train 3 models, score live, summarise."""
    rows = load_recorded(data).rows if data is not None else None
    options = DemoOptions(
        duration=duration,
        data_rows=rows,
        data_key=data_key_for(data, seed),
        coins=coins,
        seed=seed,
        speed=speed,
    )
    screen: Console = err_console if as_json else console
    serving = (
        replace(http_options(host, port), on_listening=lambda at: print_urls(at, screen)) if http else None
    )

    async def service(settings: Settings) -> DemoSnapshot:
        with Live(console=screen, refresh_per_second=2, transient=False) as view:
            final = await run_demo(settings, options, lambda snap: view.update(render(snap)), serving)
            view.update(render(final))
        screen.line()  # the last frame of a live view ends without a newline when not on a terminal
        return final

    final = run(service)
    if as_json:
        print_json(final.as_json())
