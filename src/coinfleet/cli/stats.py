"""`coinfleet stats`: per-model statistics (counts, hit rates by both rules, alert precision and gain)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.config import Settings
from coinfleet.service.schemas import Statistics, StatisticsReport
from coinfleet.service.stats import parse_since, statistics


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}%"


def render(stats: Sequence[Statistics], since: datetime | None) -> Table:
    """One row per model."""
    window = "all time" if since is None else f"since {since:%Y-%m-%d %H:%M:%S}Z"
    table = Table(title=f"coinfleet stats — {window}")
    columns = (
        "model",
        "preds",
        "neg/pos/alert",
        "evaluated",
        "pending",
        "no data",
        "hit@end",
        "hit within",
        "alert prec@end",
        "alert prec within",
        "alert gain avg",
        "median",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in stats:
        table.add_row(
            s.name or "all models",
            str(s.predictions),
            "/".join(str(s.by_tag[t]) for t in ("negative", "positive", "alert")),
            str(s.evaluated),
            str(s.pending),
            str(s.by_status["no_data"]),
            _pct(s.hit_rate_at_horizon),
            _pct(s.hit_rate_within),
            _pct(s.alert_precision_at_horizon),
            _pct(s.alert_precision_within),
            _num(s.alert_gain_avg_pct),
            _num(s.alert_gain_median_pct),
        )
    return table


def stats(
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    since: str | None = typer.Option(
        None, "--since", help="Window: 1h, 24h, 7d or an ISO time (default all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line instead of the table."),
) -> None:
    """Statistics per model: counts by tag, evaluated/pending, hit rates, alert precision and gain."""

    async def service(settings: Settings) -> StatisticsReport:
        async with connection(settings) as db:
            return await statistics(db, since=parse_since(since), model=model)

    report = run(service)
    if as_json:
        print_json(report.model_dump())
    else:
        console.print(render(report.models, report.since))
