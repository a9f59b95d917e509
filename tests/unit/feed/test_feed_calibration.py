"""Calibration figures measured on hand-made rows, and the side-by-side command."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coinfleet.feed import curve
from coinfleet.feed.calibration import Calibration, compare, main, measure
from coinfleet.metrics import MetricRow

START = datetime(2025, 6, 6, 16, 35, tzinfo=UTC)


def row(mint: str, seconds: float, pool: float) -> MetricRow:
    close = curve.price(pool)
    return MetricRow(
        mint=mint,
        timestamp=START + timedelta(seconds=seconds),
        phase_id_at_time=1,
        price_open=close,
        price_high=close,
        price_low=close,
        price_close=close,
        market_cap_close=curve.market_cap(pool),
        volume_sol=0.0,
        buy_volume_sol=0.0,
        sell_volume_sol=0.0,
        num_buys=0,
        num_sells=0,
        unique_wallets=0,
    )


@pytest.fixture
def figures() -> Calibration:
    pump = [row("P", 0, 30.0), row("P", 5, 30.0), row("P", 15, 36.0), row("P", 200, 32.0)]
    flat = [row("F", 10, 30.0), row("F", 16, 30.0), row("F", 22, 30.0)]
    return measure(list(reversed(pump + flat)))


def test_counts_and_gaps(figures: Calibration) -> None:
    assert (figures.coins, figures.rows) == (2, 7)
    # gaps 5, 10, 185, 6, 6
    assert figures.gap_median_s == 6.0
    assert figures.rows_per_coin_median == 3.5
    assert figures.lifetime_median_s == pytest.approx((200 + 12) / 2)
    assert figures.rows_per_second == pytest.approx(7 / 200)


def test_moves(figures: Calibration) -> None:
    # moves: +44 % (30 → 36 SOL, price (36/30)²), then −20.99 % (36 → 32 SOL, price (32/36)²)
    assert figures.moving_row_share == pytest.approx(2 / 5)
    assert figures.up_move_share == 0.5
    assert figures.move_abs_median_pct == pytest.approx((44.0 + 100 * (1 - (32 / 36) ** 2)) / 2)


def test_early_rise_crash_and_progress(figures: Calibration) -> None:
    assert figures.rise_10_share == 0.5
    assert figures.rise_50_share == 0.0
    assert figures.crash_50_share == 0.0
    assert figures.peak_progress_max == pytest.approx(curve.progress_pct(36.0))
    assert figures.final_progress_median == pytest.approx(curve.progress_pct(32.0) / 2)


def test_no_rows_cannot_be_measured() -> None:
    with pytest.raises(ValueError, match="no rows"):
        measure([])


def test_compare_prints_every_figure_once() -> None:
    table = compare(measure([row("A", 0, 30.0), row("A", 6, 31.0)]), measure([row("B", 0, 30.0)]))
    names = [line.split()[0] for line in table.splitlines()[1:]]
    assert names == [field.name for field in fields(Calibration)]


def test_the_command_prints_the_real_and_the_simulated_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = "timestamp,mint,sol_in_pool,unique_buyers,whale_flag,buy_pressure,sell_pressure,bot_like"
    lines = [
        f"2025-06-06T16:{minute:02d}:00+00:00,A,30.{minute},4,True,1.0,0.5,False" for minute in range(35, 45)
    ]
    path = tmp_path / "tracks.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    main([str(path), "--seed", "3"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["figure", "real", "simulator"]
    assert "gap_median_s" in out
