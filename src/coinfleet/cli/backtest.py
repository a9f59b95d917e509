"""`coinfleet backtest FILE`: replay a recorded file through the real lanes and evaluation, in a
throwaway database on the same server, and print the statistics, each model's coverage (judged /
no_data / pending of the predictions whose horizon ended inside the file) and its rates as of the
horizon end beside the former first-row-in-grace rule, which drops every coin that stopped trading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coinfleet.cli.common import console, err_console, print_json, run
from coinfleet.cli.feed import load_recorded
from coinfleet.cli.stats import render
from coinfleet.cli.tables import WIDE_OPTION, Column, make_table, print_table
from coinfleet.config import Settings
from coinfleet.service.backtest import run_backtest
from coinfleet.service.schemas import BacktestReport, Coverage, FeedStall, RuleComparison


def _share(part: int, whole: int) -> str:
    return "-" if not whole else f"{part} ({part / whole:.1%})"


COVERAGE_COLUMNS = (
    Column("model", name=True),
    Column("ended"),
    Column("judged"),
    Column("no data"),
    Column("invalid price", narrow=False),
    Column("pending", narrow=False),
    Column("past the file", narrow=False),
)


def render_coverage(coverage: Sequence[Coverage], *, wide: bool = True) -> Table:
    """Per model: what became of the predictions whose horizon ended inside the file."""
    rows = [
        (
            c.name,
            str(c.ended),
            _share(c.judged, c.ended),
            _share(c.no_data, c.ended),
            _share(c.invalid_price, c.ended),
            _share(c.pending, c.ended),
            str(c.running),
        )
        for c in coverage
    ]
    title = "coverage: predictions whose horizon ended inside the file"
    return make_table(title, COVERAGE_COLUMNS, rows, wide=wide)


def describe_stalls(stalls: Sequence[FeedStall], grace_seconds: float) -> str:
    """One line: the file's silences longer than the grace period, where no rule can judge a horizon end."""
    if not stalls:
        return f"feed stalls in the file (no row of any coin for more than {grace_seconds:g} s): none"
    spans = ", ".join(
        f"{s.last_row:%Y-%m-%d %H:%M:%S}–{s.next_row:%H:%M:%S} ({s.seconds:.0f} s)" for s in stalls
    )
    return (
        f"feed stalls in the file (no row of any coin for more than {grace_seconds:g} s): {spans}; "
        f"a horizon that ends inside one more than {grace_seconds:g} s before its next row is no_data "
        "under any rule"
    )


RULE_COLUMNS = (
    Column("model", name=True),
    Column("judged"),
    Column("hit@end"),
    Column("hit within"),
    Column("alert prec@end", narrow=False),
    Column("alert prec within", narrow=False),
)


def render_rules(rules: Sequence[RuleComparison], *, wide: bool = True) -> Table:
    """Per model: hit rate and alert precision as of the horizon end beside the former rule."""
    rows = [
        (
            r.name,
            f"{r.judged} / {r.judged_former}",
            _pair(r.hit_rate_at_horizon, r.hit_rate_at_horizon_former),
            _pair(r.hit_rate_within, r.hit_rate_within_former),
            _pair(r.alert_precision_at_horizon, r.alert_precision_at_horizon_former),
            _pair(r.alert_precision_within, r.alert_precision_within_former),
        )
        for r in rules
    ]
    title = escape("as-of rule vs former rule (first row in [end, end + grace]; quiet coins dropped)")
    return make_table(title, RULE_COLUMNS, rows, wide=wide, caption="each cell: as-of / former")


def _pair(as_of: float | None, former: float | None) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    return f"{pct(as_of)} / {pct(former)}"


def backtest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A recorded file (CSV)."),
    model: list[str] = typer.Option(
        [], "--model", help="Model to backtest (repeatable; default: all active)."
    ),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of statistics."),
    wide: bool = WIDE_OPTION,
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
    print_table(screen, render(result.models, None, wide=wide), wide=wide)
    print_table(screen, render_coverage(result.coverage, wide=wide), wide=wide)
    screen.print(escape(describe_stalls(result.stalls, result.grace_seconds)))
    print_table(screen, render_rules(result.rules, wide=wide), wide=wide)
    if as_json:
        print_json(
            {
                "rows": result.rows,
                "models": [s.model_dump() for s in result.models],
                "coverage": [c.model_dump() for c in result.coverage],
                "rules": [r.model_dump() for r in result.rules],
                "stalls": [s.model_dump(mode="json") for s in result.stalls],
            }
        )
