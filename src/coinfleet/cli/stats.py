"""`coinfleet stats`: per-model statistics (counts, hit rates by both rules, alert precision and gain),
calibration (Brier score, reliability table) and feature drift (PSI against the training distribution)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.config import Settings
from coinfleet.evaluation.calibration import Calibration
from coinfleet.reports import (
    DRIFT_WINDOW_HOURS,
    ModelDrift,
    ModelStats,
    model_calibration,
    model_drift,
    model_stats,
    parse_since,
)

#: drifted features named per model in the table (the JSON has all)
SHOWN_DRIFTED = 3


@dataclass(frozen=True, kw_only=True)
class StatsReport:
    """Everything `stats` prints: statistics, calibration and drift per model."""

    since: datetime | None
    stats: list[ModelStats]
    calibration: dict[int, Calibration]
    drift: dict[int, ModelDrift]

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: one entry per model."""
        return {
            "since": self.since,
            "models": [
                {
                    **s.as_dict(),
                    "calibration": _calibration_dict(self.calibration.get(s.model_id)),
                    "drift": self.drift[s.model_id].as_dict() if s.model_id in self.drift else None,
                }
                for s in self.stats
            ],
        }


def _calibration_dict(value: Calibration | None) -> dict[str, Any]:
    return (value or Calibration(count=0, brier=None, base_rate=None, table=())).as_dict()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}%"


def render(stats: Sequence[ModelStats], since: datetime | None) -> Table:
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
            s.name,
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


def render_quality(
    stats: Sequence[ModelStats], calibration: Mapping[int, Calibration], drift: Mapping[int, ModelDrift]
) -> Table:
    """One row per model: Brier score over judged predictions and the features whose PSI is over the
    threshold."""
    table = Table(title="calibration (judged predictions) and drift (recent scored rows vs training)")
    for column in ("model", "judged", "Brier", "base rate", "drift rows", "drifted features (PSI)"):
        table.add_column(column, justify="left" if column in ("model", "drifted features (PSI)") else "right")
    for s in stats:
        cal, dr = calibration.get(s.model_id), drift.get(s.model_id)
        table.add_row(
            s.name,
            str(cal.count if cal else 0),
            "-" if cal is None or cal.brier is None else f"{cal.brier:.4f}",
            _pct(cal.base_rate if cal else None),
            "-" if dr is None else str(dr.rows),
            _drifted(dr),
        )
    return table


def _drifted(drift: ModelDrift | None) -> str:
    if drift is None:
        return "-"
    if drift.note:
        return drift.note
    flagged = [f for f in drift.features if f.drifted]
    shown = ", ".join(f"{f.feature} {f.psi:.2f}" for f in flagged[:SHOWN_DRIFTED])
    more = len(flagged) - SHOWN_DRIFTED
    return (shown + (f" +{more} more" if more > 0 else "")) or "none"


def render_reliability(name: str, calibration: Calibration) -> Table:
    """A model's reliability table: predicted probability bucket → observed hit rate, count."""
    table = Table(
        title=f"{name}: reliability (Brier {calibration.brier or 0:.4f}, {calibration.count} judged)"
    )
    for column in ("predicted", "count", "mean p", "observed"):
        table.add_column(column, justify="right")
    for row in calibration.table:
        table.add_row(
            f"{row.lower:.1f}–{row.upper:.1f}",
            str(row.count),
            f"{row.mean_probability:.3f}",
            _pct(row.hit_rate),
        )
    return table


async def stats_report(
    conn: asyncpg.Connection, *, since: datetime | None, model: str | None, drift_hours: float
) -> StatsReport:
    """Statistics, calibration and drift of every model (or the one named)."""
    stats = await model_stats(conn, since=since, model=model)
    calibration = await model_calibration(conn, since=since, model=model)
    drift = {d.model_id: d for d in await model_drift(conn, model=model, hours=drift_hours)}
    return StatsReport(since=since, stats=stats, calibration=calibration, drift=drift)


def stats(
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    since: str | None = typer.Option(
        None, "--since", help="Window: 1h, 24h, 7d or an ISO time (default all)."
    ),
    drift_hours: float = typer.Option(
        DRIFT_WINDOW_HOURS, "--drift-hours", min=0.01, help="Drift: scored rows of the last N hours."
    ),
    reliability: bool = typer.Option(False, "--reliability", help="Also print each reliability table."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line instead of the tables."),
) -> None:
    """Statistics per model: counts, hit rates, alert precision and gain, calibration and drift."""

    async def service(settings: Settings) -> StatsReport:
        async with connection(settings) as conn:
            return await stats_report(conn, since=parse_since(since), model=model, drift_hours=drift_hours)

    report = run(service)
    if as_json:
        print_json(report.as_json())
        return
    console.print(render(report.stats, report.since))
    console.print(render_quality(report.stats, report.calibration, report.drift))
    if reliability:
        for s in report.stats:
            if s.model_id in report.calibration:
                console.print(render_reliability(s.name, report.calibration[s.model_id]))
