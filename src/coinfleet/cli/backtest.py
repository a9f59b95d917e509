"""`coinfleet backtest FILE`: replay a recorded file through the real lanes and evaluation, in a
throwaway database on the same server, and print the statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from coinfleet.cli.common import console, err_console, print_json, run
from coinfleet.cli.feed import load_recorded
from coinfleet.cli.stats import render
from coinfleet.config import Settings
from coinfleet.service.backtest import run_backtest
from coinfleet.service.schemas import BacktestReport


def backtest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A recorded file (CSV)."),
    model: list[str] = typer.Option(
        [], "--model", help="Model to backtest (repeatable; default: all active)."
    ),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of statistics."),
) -> None:
    """Replay a recorded file through the lanes and evaluation in a throwaway database; print statistics."""
    rows = load_recorded(file).rows
    screen = err_console if as_json else console

    async def service(settings: Settings) -> BacktestReport:
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=screen, transient=True) as progress:
            task = progress.add_task("rows", total=len(rows))
            return await run_backtest(
                settings, rows, models=model, on_rows=lambda n: progress.advance(task, n)
            )

    result = run(service)
    screen.print(render(result.models, None))
    if as_json:
        print_json({"rows": result.rows, "models": [s.model_dump() for s in result.models]})
