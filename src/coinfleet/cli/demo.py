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
from coinfleet.cli.tables import Column, make_table
from coinfleet.config import Settings
from coinfleet.demo import (
    DEMO_DATABASE,
    TRAIN_SHARE,
    DemoOptions,
    DemoSnapshot,
    data_key_for,
    run_demo,
    split_recorded,
)

LIVE_COLUMNS = (
    Column("model", name=True),
    Column("target", narrow=False, text=True),
    Column("events"),
    Column("lag"),
    Column("neg"),
    Column("pos"),
    Column("alert"),
    Column("last p"),
    Column("err"),
    Column("Brier val/live", narrow=False),
)


def render(snapshot: DemoSnapshot, *, wide: bool = False) -> Table:
    """One row per model: events, lag, predictions by tag, last probability."""
    state = "feeding" if snapshot.feeding else "done"
    rows = [
        (
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
        for m in snapshot.models
    ]
    title = f"coinfleet demo — {snapshot.events} metric rows, {snapshot.elapsed:.0f}s, {state}"
    return make_table(title, LIVE_COLUMNS, rows, wide=wide)


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
    train_rows, rows = None, None
    if data is not None:
        train_rows, rows = split_recorded(load_recorded(data).rows)
        err_console.print(
            f"training on the first {TRAIN_SHARE:.0%} of {data.name}'s time span ({len(train_rows)} rows); "
            f"scoring the other {len(rows)} rows live, out of sample"
        )
    options = DemoOptions(
        duration=duration,
        data_rows=rows,
        train_rows=train_rows,
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
    screen.print(render_summary(final))
    for line in next_steps(final, data):
        screen.print(line, highlight=False)
    if as_json:
        print_json(final.as_json())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


SUMMARY_COLUMNS = (
    Column("model", name=True),
    Column("neg/pos/alert"),
    Column("judged"),
    Column("hit@end"),
    Column("hit within"),
    Column("lag"),
)


def render_summary(final: DemoSnapshot) -> Table:
    """Per model: predictions by tag, alerts, hit rates by both rules once evaluated, lag."""
    rows = [
        (
            m.name,
            "/".join(str(m.predictions.get(t, 0)) for t in ("negative", "positive", "alert")),
            str(m.evaluated),
            _pct(m.hit_rate_at_horizon),
            _pct(m.hit_rate_within),
            str(m.lag_events),
        )
        for m in final.models
    ]
    return make_table("demo summary (hit rates over judged predictions)", SUMMARY_COLUMNS, rows, wide=False)


def next_steps(final: DemoSnapshot, data: Path | None) -> list[str]:
    """The commands to try next (the demo's models are where they run)."""
    file = str(data) if data is not None else "FILE.csv"
    if final.database == "main":
        where = "the demo's models and results are in the main database; try next:"
        prefix = ""
    else:
        where = f"the demo's models and results are in the database {DEMO_DATABASE!r} on your server; try:"
        prefix = f"DATABASE_URL=<your server>/{DEMO_DATABASE} "
    commands = (
        "models list",
        "stats",
        f"backtest {file}",
        "serve    (the lanes, the API and the UI; it prints the URLs)",
    )
    return [where, *(f"  {prefix}coinfleet {c}" for c in commands)]
