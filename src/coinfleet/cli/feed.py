"""`coinfleet replay` and `coinfleet simulate`: write coin_metrics rows as an ingester would."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from coinfleet.cli.common import console, err_console, print_json, run, short_command_database
from coinfleet.config import Settings
from coinfleet.feed import live
from coinfleet.feed.recorded import RecordedFile, read_recorded
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig


def load_recorded(path: Path, *, quiet: bool = False) -> RecordedFile:
    """Read a recorded file and report its bad rows (line numbers) on stderr."""
    recorded = read_recorded(path)
    if recorded.errors and not quiet:
        for error in recorded.errors[:20]:
            err_console.print(f"[yellow]skipped line {error.line}:[/yellow] {error.message}")
        more = len(recorded.errors) - 20
        if more > 0:
            err_console.print(f"[yellow]… and {more} more bad lines[/yellow]")
    return recorded


def replay(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A recorded file (CSV)."),
    speed: float = typer.Option(1.0, min=0.001, help="Times real time; 60 = an hour per minute."),
    fast: bool = typer.Option(False, "--fast", help="As fast as possible, ignoring speed."),
    loop: bool = typer.Option(False, "--loop", help="Start again at the end, until Ctrl-C."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
) -> None:
    """Replay a recorded file into coin_metrics; bad rows are reported, counted and skipped."""
    recorded = load_recorded(file)

    async def service(settings: Settings) -> int:
        stop = _stop_on_signals()
        async with short_command_database(settings) as db:
            with _progress(len(recorded.rows) if not loop else None) as (progress, task):
                return await live.replay(
                    db.pool,
                    recorded.rows,
                    speed=None if fast else speed,
                    loops=None if loop else 1,
                    on_rows=lambda n: progress.advance(task, n),
                    stop=stop,
                )

    inserted = run(service)
    summary = {"inserted": inserted, "bad_rows": len(recorded.errors), "lines": recorded.total_lines}
    if as_json:
        print_json(summary)
    else:
        console.print(f"inserted {inserted} rows, skipped {len(recorded.errors)} bad rows")


def simulate(
    coins: int = typer.Option(50, min=0, help="Coins launched in the first half minute."),
    rate: float = typer.Option(2.0, min=0, help="Further coin launches per minute."),
    seed: int = typer.Option(7, help="Same seed, same market."),
    duration: float | None = typer.Option(None, min=1, help="Stop after this many seconds."),
) -> None:
    """Write a live simulated pump.fun market (bonding curve, pumps, rugs) until stopped."""
    # the first coins launch within half a minute, so the market is busy soon after the start
    config = SimulatorConfig(coins=coins, seed=seed, launches_per_minute=rate, launch_window_seconds=30)

    async def service(settings: Settings) -> int:
        stop = _stop_on_signals()
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, stop.set)
        simulator = MarketSimulator(config, datetime.now(UTC))
        async with short_command_database(settings) as db:
            with _progress(None) as (progress, task):
                return await live.simulate(
                    db.pool, simulator, stop=stop, on_rows=lambda n: progress.advance(task, n)
                )

    console.print(f"inserted {run(service)} rows")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextmanager
def _progress(total: int | None) -> Iterator[tuple[Progress, TaskID]]:
    """A rich progress bar on stderr for row counts (total None: open-ended)."""
    bar = Progress(
        TextColumn("rows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
    )
    with bar:
        yield bar, bar.add_task("rows", total=total)
