"""Figures that describe a market's rows, measured alike on a recorded file and on the simulator."""

from __future__ import annotations

import argparse
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import numpy as np

from coinfleet.feed import curve
from coinfleet.feed.recorded import read_recorded
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.metrics import MetricRow

_T = TypeVar("_T")

#: how long after its first row a coin's early rise is measured
EARLY_WINDOW_SECONDS = 120.0

# Figures measured on pumpfun_tracks_2025-06-06.csv with `python -m coinfleet.feed.calibration FILE`.
#: median gap between two rows of one coin (s)
REAL_GAP_MEDIAN_S = 5.84
#: 90th percentile of that gap (s)
REAL_GAP_P90_S = 11.5
#: median rows a coin is seen for
REAL_ROWS_PER_COIN_MEDIAN = 18.0
#: median seconds from a coin's first to its last row
REAL_LIFETIME_MEDIAN_S = 207.0
#: share of bars whose close differs from their open
REAL_MOVING_ROW_SHARE = 0.0178
#: share of price moves that go up
REAL_UP_MOVE_SHARE = 0.584
#: median size of a price move (%, absolute)
REAL_MOVE_ABS_MEDIAN_PCT = 0.68
#: 90th percentile of that size (%)
REAL_MOVE_ABS_P90_PCT = 14.95
#: share of coins whose close rises ≥ 10 % within 2 minutes of their first row
REAL_RISE_10_SHARE = 0.067
#: share of coins whose close falls ≥ 50 % below an earlier peak
REAL_CRASH_50_SHARE = 0.013
#: median bonding-curve progress at a coin's last row (%)
REAL_FINAL_PROGRESS_MEDIAN = 0.09
#: 90th percentile of that progress (%)
REAL_FINAL_PROGRESS_P90 = 7.55
#: highest progress any coin reached (%)
REAL_PEAK_PROGRESS_MAX = 66.2

#: where each `Calibration` figure of a default run (seed 7, 100 minutes) must land; wide where the
#: real figure rests on a handful of coins
CALIBRATION_BANDS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "gap_median_s": (REAL_GAP_MEDIAN_S * 0.85, REAL_GAP_MEDIAN_S * 1.15),
        "gap_p90_s": (REAL_GAP_P90_S * 0.75, REAL_GAP_P90_S * 1.25),
        "rows_per_coin_median": (REAL_ROWS_PER_COIN_MEDIAN * 0.5, REAL_ROWS_PER_COIN_MEDIAN * 2.0),
        "lifetime_median_s": (REAL_LIFETIME_MEDIAN_S * 0.5, REAL_LIFETIME_MEDIAN_S * 2.0),
        "moving_row_share": (REAL_MOVING_ROW_SHARE * 0.5, REAL_MOVING_ROW_SHARE * 2.5),
        "up_move_share": (REAL_UP_MOVE_SHARE - 0.12, REAL_UP_MOVE_SHARE + 0.12),
        "move_abs_median_pct": (REAL_MOVE_ABS_MEDIAN_PCT * 0.33, REAL_MOVE_ABS_MEDIAN_PCT * 3.5),
        "move_abs_p90_pct": (REAL_MOVE_ABS_P90_PCT * 0.6, REAL_MOVE_ABS_P90_PCT * 1.8),
        "rise_10_share": (REAL_RISE_10_SHARE - 0.05, REAL_RISE_10_SHARE + 0.08),
        "crash_50_share": (0.0, REAL_CRASH_50_SHARE + 0.05),
        "final_progress_median": (0.0, REAL_FINAL_PROGRESS_MEDIAN * 5.0),
        "final_progress_p90": (REAL_FINAL_PROGRESS_P90 * 0.5, REAL_FINAL_PROGRESS_P90 * 2.0),
        "peak_progress_max": (REAL_PEAK_PROGRESS_MAX * 0.5, 100.0),
    }
)


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Figures of a set of metric rows; each is a plain number so two markets compare field by field."""

    coins: int
    rows: int
    rows_per_second: float  #: rows over the span from the first to the last timestamp
    gap_median_s: float  #: gap between consecutive rows of one coin
    gap_p90_s: float
    rows_per_coin_median: float
    rows_per_coin_p90: float
    lifetime_median_s: float  #: first to last row of a coin
    lifetime_p90_s: float
    moving_row_share: float  #: share of bars (after a coin's first) whose close differs from its open
    up_move_share: float  #: share of those moves that go up
    move_abs_median_pct: float  #: median size of a move, % of the open
    move_abs_p90_pct: float  #: 90th percentile of that size
    rise_10_share: float  #: coins whose close rises ≥ 10 % above their first close within the early window
    rise_50_share: float  #: the same for ≥ 50 %
    crash_50_share: float  #: coins whose close falls ≥ 50 % below an earlier peak
    final_progress_median: float  #: bonding-curve progress (%) at a coin's last row
    final_progress_p90: float
    peak_progress_max: float  #: the highest progress any coin reached


def measure(rows: Iterable[MetricRow]) -> Calibration:
    """Measure the figures of these rows (any order); there must be at least one."""
    by_coin = _closes_by_coin(rows)
    if not by_coin:
        raise ValueError("no rows to measure; give measure() at least one metric row")
    series = list(by_coin.values())
    stamps = [moment for coin in series for moment, _ in coin]
    gaps = [gap for coin in series for gap in _gaps(coin)]
    changes = [change for coin in series for change in _changes(coin)]
    moves = [change for change in changes if change != 0.0]
    return Calibration(
        coins=len(series),
        rows=len(stamps),
        rows_per_second=len(stamps) / max((max(stamps) - min(stamps)).total_seconds(), 1.0),
        gap_median_s=_quantile(gaps, 0.5),
        gap_p90_s=_quantile(gaps, 0.9),
        rows_per_coin_median=_quantile([len(coin) for coin in series], 0.5),
        rows_per_coin_p90=_quantile([len(coin) for coin in series], 0.9),
        lifetime_median_s=_quantile([_lifetime(coin) for coin in series], 0.5),
        lifetime_p90_s=_quantile([_lifetime(coin) for coin in series], 0.9),
        moving_row_share=_share(changes, lambda change: change != 0.0),
        up_move_share=_share(moves, lambda move: move > 0.0),
        move_abs_median_pct=_quantile([abs(move) for move in moves], 0.5),
        move_abs_p90_pct=_quantile([abs(move) for move in moves], 0.9),
        rise_10_share=_share(series, lambda coin: _early_rise(coin) >= 10.0),
        rise_50_share=_share(series, lambda coin: _early_rise(coin) >= 50.0),
        crash_50_share=_share(series, lambda coin: _worst_drawdown(coin) >= 50.0),
        final_progress_median=_quantile([_progress(coin[-1][1]) for coin in series], 0.5),
        final_progress_p90=_quantile([_progress(coin[-1][1]) for coin in series], 0.9),
        peak_progress_max=max(_progress(max(close for _, close in coin)) for coin in series),
    )


def compare(real: Calibration, simulated: Calibration) -> str:
    """The two sets of figures side by side, one figure a line."""
    lines = [f"{'figure':<24}{'real':>14}{'simulator':>14}"]
    for name in (field.name for field in fields(Calibration)):
        lines.append(f"{name:<24}{getattr(real, name):>14.4g}{getattr(simulated, name):>14.4g}")
    return "\n".join(lines)


def simulate_like(rows: Sequence[MetricRow], seed: int) -> list[MetricRow]:
    """A default simulator run (this seed) over the same time span as these rows."""
    start, end = min(row.timestamp for row in rows), max(row.timestamp for row in rows)
    simulator = MarketSimulator(SimulatorConfig(seed=seed), start)
    return simulator.history((end - start).total_seconds())


def main(argv: Sequence[str] | None = None) -> None:
    """Print a recorded file's figures next to the simulator's over the same span."""
    parser = argparse.ArgumentParser(prog="python -m coinfleet.feed.calibration", description=main.__doc__)
    parser.add_argument("file", type=Path, help="a recorded CSV file")
    parser.add_argument("--seed", type=int, default=SimulatorConfig().seed, help="simulator seed")
    args = parser.parse_args(argv)
    real_rows = read_recorded(args.file).rows
    print(compare(measure(real_rows), measure(simulate_like(real_rows, args.seed))))


def _closes_by_coin(rows: Iterable[MetricRow]) -> dict[str, list[tuple[datetime, float]]]:
    by_coin: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for row in rows:
        by_coin[row.mint].append((row.timestamp, row.price_close))
    for coin in by_coin.values():
        coin.sort(key=lambda point: point[0])
    return by_coin


def _gaps(coin: Sequence[tuple[datetime, float]]) -> list[float]:
    return [(later[0] - earlier[0]).total_seconds() for earlier, later in itertools.pairwise(coin)]


def _changes(coin: Sequence[tuple[datetime, float]]) -> list[float]:
    return [(later[1] / earlier[1] - 1.0) * 100.0 for earlier, later in itertools.pairwise(coin)]


def _lifetime(coin: Sequence[tuple[datetime, float]]) -> float:
    return (coin[-1][0] - coin[0][0]).total_seconds()


def _early_rise(coin: Sequence[tuple[datetime, float]]) -> float:
    start, first_close = coin[0]
    early = [close for moment, close in coin if (moment - start).total_seconds() <= EARLY_WINDOW_SECONDS]
    return (max(early) / first_close - 1.0) * 100.0


def _worst_drawdown(coin: Sequence[tuple[datetime, float]]) -> float:
    peak, worst = 0.0, 0.0
    for _, close in coin:
        peak = max(peak, close)
        worst = max(worst, (1.0 - close / peak) * 100.0)
    return worst


def _progress(close: float) -> float:
    return curve.progress_pct(math.sqrt(close * curve.CURVE_K))


def _quantile(values: Sequence[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else math.nan


def _share(items: Sequence[_T], predicate: Callable[[_T], bool]) -> float:
    return sum(1 for item in items if predicate(item)) / len(items) if items else math.nan


if __name__ == "__main__":
    main()
