"""`coinfleet stats`: per-model statistics (counts, hit rates by both rules, alert precision and gain),
calibration (Brier score, reliability table) and feature drift (PSI against the training sample)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.cli.tables import WIDE_OPTION, Column, make_table, print_table
from coinfleet.config import Settings
from coinfleet.models.drift import DRIFT_WINDOW_HOURS
from coinfleet.service.common import Db
from coinfleet.service.quality import calibration, drift
from coinfleet.service.schemas import (
    CalibrationFigures,
    CalibrationReport,
    DriftReport,
    Schema,
    Statistics,
    StatisticsReport,
)
from coinfleet.service.stats import parse_since, statistics

#: flagged features named per model in the table (the JSON has every PSI)
SHOWN_DRIFTED = 3


class StatsOutput(Schema):
    """Everything `stats` prints: statistics, calibration and drift."""

    statistics: StatisticsReport
    calibration: list[CalibrationReport]
    drift: list[DriftReport]

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: the statistics report with calibration and drift per model."""
        return {**self.statistics.model_dump(), **self.model_dump(include={"calibration", "drift"})}


async def stats_output(
    db: Db, *, since: datetime | None, model: str | None, drift_hours: float
) -> StatsOutput:
    """Statistics, calibration and drift of every model (or the one named)."""
    return StatsOutput(
        statistics=await statistics(db, since=since, model=model),
        calibration=await calibration(db, since=since, model=model),
        drift=await drift(db, model=model, hours=drift_hours),
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}%"


STATS_COLUMNS = (
    Column("model", name=True),
    Column("preds"),
    Column("neg/pos/alert", narrow=False),
    Column("alerts"),
    Column("judged"),
    Column("pending", narrow=False),
    Column("no data", narrow=False),
    Column("hit@end"),
    Column("hit within"),
    Column("alert prec@end", narrow=False),
    Column("alert prec within"),
    Column("alert gain avg", narrow=False),
    Column("median", narrow=False),
)


def render(stats: Sequence[Statistics], since: datetime | None, *, wide: bool = True) -> Table:
    """One row per model (fewer columns unless `wide`)."""
    window = "all time" if since is None else f"since {since:%Y-%m-%d %H:%M:%S}Z"
    rows = [
        (
            s.name or "all models",
            str(s.predictions),
            "/".join(str(s.by_tag[t]) for t in ("negative", "positive", "alert")),
            str(s.by_tag["alert"]),
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
        for s in stats
    ]
    return make_table(f"coinfleet stats — {window}", STATS_COLUMNS, rows, wide=wide)


QUALITY_COLUMNS = (
    Column("model", name=True),
    Column("judged"),
    Column("Brier"),
    Column("val. Brier"),
    Column("base rate", narrow=False),
    Column("drift rows", narrow=False),
    Column("drifted features (PSI)", text=True),
)


def render_quality(stats: Sequence[Statistics], output: StatsOutput, *, wide: bool = True) -> Table:
    """One row per model: Brier score over judged predictions and the features over the PSI threshold."""
    calibrated = {c.model_id: c for c in output.calibration}
    drifted = {d.model_id: d for d in output.drift}
    rows = []
    for s in stats:
        cal, dr = calibrated.get(s.model_id or -1), drifted.get(s.model_id or -1)
        rows.append(
            (
                s.name or "all models",
                str(cal.count if cal else 0),
                _brier(cal),
                _brier(cal.validation if cal else None),
                _pct(cal.base_rate if cal else None),
                "-" if dr is None else str(dr.rows),
                _drifted(dr),
            )
        )
    title = "calibration (judged; val.: the training's validation split) and drift (recent vs training)"
    return make_table(title, QUALITY_COLUMNS, rows, wide=wide)


def _brier(figures: CalibrationFigures | None) -> str:
    return "-" if figures is None or figures.brier is None else f"{figures.brier:.4f}"


def _drifted(drift: DriftReport | None) -> str:
    if drift is None:
        return "-"
    if drift.note:
        return drift.note
    flagged = [f for f in drift.features if f.drifted]
    shown = ", ".join(f"{f.feature} {f.psi or 0:.2f}" for f in flagged[:SHOWN_DRIFTED])
    more = len(flagged) - SHOWN_DRIFTED
    return (shown + (f" +{more} more" if more > 0 else "")) or "none"


def render_reliability(report: CalibrationReport) -> Table:
    """A model's reliability table: predicted probability bucket → observed hit rate, count; beside it
    the same bucket on the training's validation split."""
    validation = report.validation
    title = f"{report.name}: reliability (Brier {_brier(report)} over {report.count} judged"
    if validation is not None:
        title += f"; validation split: Brier {_brier(validation)} over {validation.count}"
    table = Table(title=title + ")")
    for column in ("predicted", "count", "mean p", "observed", "val. count", "val. observed"):
        table.add_column(column, justify="right")
    live = {round(row.lower, 6): row for row in report.table}
    trained = {round(row.lower, 6): row for row in (validation.table if validation else [])}
    for lower in sorted(live.keys() | trained.keys()):
        row, val = live.get(lower), trained.get(lower)
        bucket = next(b for b in (row, val) if b is not None)
        table.add_row(
            f"{bucket.lower:.1f}–{bucket.upper:.1f}",
            "0" if row is None else str(row.count),
            "-" if row is None else f"{row.mean_probability:.3f}",
            _pct(row.hit_rate if row else None),
            "0" if val is None else str(val.count),
            _pct(val.hit_rate if val else None),
        )
    return table


def stats(
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    since: str | None = typer.Option(
        None, "--since", help="Window: 1h, 24h, 7d or an ISO time (default all)."
    ),
    drift_hours: float = typer.Option(
        DRIFT_WINDOW_HOURS, "--drift-hours", min=0.01, help="Drift: scored rows of the last N hours."
    ),
    reliability: bool = typer.Option(False, "--reliability", help="Also print each reliability table."),
    wide: bool = WIDE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line instead of the tables."),
) -> None:
    """Statistics per model: counts, hit rates, alert precision and gain, calibration and drift."""

    async def service(settings: Settings) -> StatsOutput:
        async with connection(settings) as db:
            return await stats_output(db, since=parse_since(since), model=model, drift_hours=drift_hours)

    output = run(service)
    if as_json:
        print_json(output.as_json())
        return
    print_table(console, render(output.statistics.models, output.statistics.since, wide=wide), wide=wide)
    print_table(console, render_quality(output.statistics.models, output, wide=wide), wide=wide)
    if reliability:
        for report in output.calibration:
            console.print(render_reliability(report))
