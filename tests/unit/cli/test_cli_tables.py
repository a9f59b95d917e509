"""Default tables fit 80 columns with names whole; --wide shows every column."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from coinfleet.cli.stats import STATS_COLUMNS, StatsOutput, render, render_quality, render_reliability
from coinfleet.cli.tables import Column, make_table, print_table
from coinfleet.service.schemas import (
    CalibrationFigures,
    CalibrationReport,
    ReliabilityBucket,
    Statistics,
    StatisticsReport,
)

LONG_NAME = "lgbm-down5-300s-long-name"


def statistics(name: str) -> Statistics:
    return Statistics(
        model_id=1, name=name, status="active", predictions=123456,
        by_tag={"negative": 100000, "positive": 20000, "alert": 3456}, evaluated=120000, pending=3456,
        by_status={"ok": 119000, "no_data": 1000, "invalid_price": 0},
        by_result_at_horizon={"success": 1, "failed": 2}, by_result_within={"success": 2, "failed": 1},
        hit_rate_at_horizon=0.333, hit_rate_within=0.667, alert_precision_at_horizon=0.25,
        alert_precision_within=0.5, alert_gain_avg_pct=3.25, alert_gain_median_pct=-1.5,
    )  # fmt: skip


def printed(table: Table, *, wide: bool) -> list[str]:
    out = io.StringIO()
    print_table(Console(file=out, width=80, color_system=None), table, wide=wide)
    return out.getvalue().splitlines()


def test_stats_fit_80_columns_with_names_whole() -> None:
    lines = printed(render([statistics(LONG_NAME), statistics("xgb-up2-120s")], None, wide=False), wide=False)
    assert max(len(line) for line in lines) <= 80
    assert any(LONG_NAME in line for line in lines) and any("xgb-up2-120s" in line for line in lines)
    assert not any("…" in line for line in lines), "no cut header or cell"
    assert not any("alert gain avg" in line for line in lines), "the wide-only columns are left out"


def test_wide_shows_every_column_uncut() -> None:
    lines = printed(render([statistics(LONG_NAME)], None, wide=True), wide=True)
    text = "\n".join(lines)
    assert all(word in text for column in STATS_COLUMNS for word in column.header.split())
    assert "100000/20000/3456" in text and "-1.50%" in text
    assert not any("…" in line for line in lines)


def test_a_name_column_never_wraps() -> None:
    columns = (Column("name", name=True), Column("note"))
    table = make_table(None, columns, [(LONG_NAME, "a long note " * 12)], wide=False)
    lines = printed(table, wide=False)
    assert sum(LONG_NAME in line for line in lines) == 1 and max(len(line) for line in lines) <= 80


def _bucket(lower: float, count: int, hit_rate: float) -> ReliabilityBucket:
    return ReliabilityBucket(
        lower=lower, upper=lower + 0.1, count=count, mean_probability=lower + 0.05, hit_rate=hit_rate
    )


def test_quality_and_reliability_show_live_beside_the_validation_split() -> None:
    validation = CalibrationFigures(
        count=40, brier=0.0812, base_rate=0.1, table=[_bucket(0.0, 30, 0.05), _bucket(0.9, 10, 0.8)]
    )
    live = CalibrationReport(
        model_id=1, name=LONG_NAME, count=20, brier=0.1234, base_rate=0.2,
        table=[_bucket(0.0, 15, 0.1), _bucket(0.5, 5, 0.6)], validation=validation,
    )  # fmt: skip
    output = StatsOutput(
        statistics=StatisticsReport(since=None, models=[statistics(LONG_NAME)], overall=statistics("")),
        calibration=[live],
        drift=[],
    )
    quality = printed(render_quality([statistics(LONG_NAME)], output, wide=False), wide=False)
    assert max(len(line) for line in quality) <= 80
    assert any("0.1234" in line and "0.0812" in line for line in quality)
    lines = printed(render_reliability(live), wide=True)
    cells = [line.replace("│", " ").split() for line in lines]
    rows = {row[0]: row[1:] for row in cells if row and row[0][:1].isdigit()}
    assert rows == {
        "0.0–0.1": ["15", "0.050", "10.0%", "30", "5.0%"],
        "0.5–0.6": ["5", "0.550", "60.0%", "0", "-"],
        "0.9–1.0": ["0", "-", "-", "10", "80.0%"],
    }
