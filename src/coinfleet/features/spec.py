"""The feature catalogue: named pure functions of a coin window, one code path for training and serving.

Every feature reads only the newest `WINDOW_ROWS` rows of a window (rows ≤ the scoring time t). Too
little history, an absent optional column or a division by zero gives NaN, never a made-up 0.
Features are computed for many windows at once: the windows are stacked right-aligned into
[n, WINDOW_ROWS] arrays padded with NaN on the left, so a lookback past the start of a coin's history
reads NaN and the result is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from coinfleet.features.window import WINDOW_COLUMNS, WINDOW_ROWS, CoinWindow, FloatArray
from coinfleet.metrics import NUMERIC_COLUMNS


class WindowBatch:
    """Many windows as one right-aligned [column, window, WINDOW_ROWS] array, NaN-padded on the left."""

    def __init__(self, values: FloatArray, lengths: npt.NDArray[np.int64], first_seen: FloatArray) -> None:
        self._values = values  #: [len(WINDOW_COLUMNS), n, WINDOW_ROWS]
        self.lengths = lengths  #: rows of each window, at most WINDOW_ROWS
        self.first_seen = first_seen  #: epoch seconds of each coin's first row ever

    @classmethod
    def of_tables(cls, tables: Sequence[FloatArray], first_seen: Sequence[float]) -> WindowBatch:
        """`tables[i]` holds window i's rows oldest → newest, one column per WINDOW_COLUMNS name, as the
        serving side keeps them; only the newest WINDOW_ROWS rows are read."""
        lengths = np.array([min(len(table), WINDOW_ROWS) for table in tables], dtype=np.int64)
        values = np.full((len(WINDOW_COLUMNS), len(tables), WINDOW_ROWS), np.nan)
        for i, (table, n) in enumerate(zip(tables, lengths.tolist(), strict=True)):
            values[:, i, WINDOW_ROWS - n :] = table[len(table) - n :].T
        return cls(values, lengths, np.asarray(first_seen, dtype=np.float64))

    @classmethod
    def of_windows(cls, windows: Sequence[CoinWindow]) -> WindowBatch:
        """CoinWindows (the training path), gathered a column at a time for all windows at once."""
        lengths = np.array([min(len(w), WINDOW_ROWS) for w in windows], dtype=np.int64)
        ends = np.cumsum(lengths)
        position = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lengths, lengths)
        rows = np.repeat(np.arange(len(windows)), lengths)
        cols = np.repeat(WINDOW_ROWS - lengths, lengths) + position
        values = np.full((len(WINDOW_COLUMNS), len(windows), WINDOW_ROWS), np.nan)
        for j, name in enumerate(WINDOW_COLUMNS if windows else ()):
            parts = [w.column(name)[-n:] for w, n in zip(windows, lengths.tolist(), strict=True)]
            values[j, rows, cols] = np.concatenate(parts)
        return cls(values, lengths, np.array([w.first_seen for w in windows], dtype=np.float64))

    def scoring_rows(self, names: Sequence[str]) -> FloatArray:
        """Columns `names` of each window's scoring row, as [n, len(names)]."""
        rows: FloatArray = self._values[[_COLUMN_INDEX[name] for name in names], :, -1].T
        return rows

    def col(self, name: str) -> FloatArray:
        """Column `name` (or `t`) as [n, WINDOW_ROWS]; the last column is the scoring row."""
        column: FloatArray = self._values[_COLUMN_INDEX[name]]
        return column


#: where each column lies in a WindowBatch
_COLUMN_INDEX = {name: i for i, name in enumerate(WINDOW_COLUMNS)}


FeatureFn = Callable[[WindowBatch], FloatArray]


@dataclass(frozen=True, kw_only=True)
class FeatureDef:
    """One named feature: what it means and how to compute it for a batch of windows."""

    name: str
    description: str
    compute: FeatureFn  #: vectorised: batch of n windows → float64 [n]

    def of(self, window: CoinWindow) -> float:
        """The feature's value for one window."""
        return float(compute_matrix([window], [self.name])[0, 0])


# --- small helpers over [n, WINDOW_ROWS] arrays (newest row in the last column) ---


def _back(a: FloatArray, k: int) -> FloatArray:
    """Values k rows before the scoring row."""
    return a[:, -1 - k]


def _prev(a: FloatArray, k: int) -> FloatArray:
    """The k rows before the scoring row (excluding it)."""
    return a[:, -1 - k : -1]


def _f64(values: object) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _row_mean(a: FloatArray) -> FloatArray:
    """Mean per window; NaN if any value is NaN (strict: missing history stays missing). The sum over
    the count is what `mean` computes, without its Python overhead."""
    return _f64(a.sum(axis=1) / a.shape[1])


def _pct(new: FloatArray, old: FloatArray) -> FloatArray:
    return (new / old - 1.0) * 100.0


def _flag(condition: FloatArray, *inputs: FloatArray) -> FloatArray:
    """1.0 / 0.0 from a boolean array, NaN where any input is NaN."""
    unknown = np.zeros(condition.shape, dtype=bool)
    for values in inputs:
        unknown |= np.isnan(values)
    return np.where(unknown, np.nan, condition.astype(np.float64))


def _mean_last(b: WindowBatch, name: str, k: int) -> FloatArray:
    return _row_mean(b.col(name)[:, -k:])


def _sum_last(b: WindowBatch, name: str, k: int) -> FloatArray:
    return _f64(b.col(name)[:, -k:].sum(axis=1))


def _net_volume(b: WindowBatch) -> FloatArray:
    return b.col("buy_volume_sol") - b.col("sell_volume_sol")


# --- the features ---


def _price_change(k: int) -> FeatureFn:
    def compute(b: WindowBatch) -> FloatArray:
        close = b.col("price_close")
        return _pct(_back(close, 0), _back(close, k))

    return compute


def _price_acceleration_5(b: WindowBatch) -> FloatArray:
    close = b.col("price_close")
    return _pct(_back(close, 0), _back(close, 5)) - _pct(_back(close, 5), _back(close, 10))


def _volatility_10(b: WindowBatch) -> FloatArray:
    close = b.col("price_close")[:, -11:]
    return _f64(_pct(close[:, 1:], close[:, :-1]).std(axis=1))


def _range_pct_last(b: WindowBatch) -> FloatArray:
    return _pct(_back(b.col("price_high"), 0), _back(b.col("price_low"), 0))


def _volume_ratio_5(b: WindowBatch) -> FloatArray:
    volume = b.col("volume_sol")
    return _back(volume, 0) / _row_mean(_prev(volume, 5))


def _volume_spike_10(b: WindowBatch) -> FloatArray:
    volume = b.col("volume_sol")
    return _back(volume, 0) / _f64(_prev(volume, 10).max(axis=1))


def _buy_volume_share_5(b: WindowBatch) -> FloatArray:
    buys, sells = _sum_last(b, "buy_volume_sol", 5), _sum_last(b, "sell_volume_sol", 5)
    return buys / (buys + sells)


def _buy_sell_count_ratio_5(b: WindowBatch) -> FloatArray:
    # +1 keeps a coin without sells (common right after launch) finite and ordered by its buys
    return _sum_last(b, "num_buys", 5) / (_sum_last(b, "num_sells", 5) + 1.0)


def _buy_pressure_trend_5(b: WindowBatch) -> FloatArray:
    pressure = b.col("buy_pressure_ratio")
    return _row_mean(pressure[:, -5:]) - _row_mean(pressure[:, -10:-5])


def _net_volume_avg_5(b: WindowBatch) -> FloatArray:
    return _row_mean(_net_volume(b)[:, -5:])


def _net_volume_flips_10(b: WindowBatch) -> FloatArray:
    net = _net_volume(b)[:, -10:]
    flips = (net[:, 1:] * net[:, :-1] < 0).sum(axis=1).astype(np.float64)
    return np.where(np.isnan(net).any(axis=1), np.nan, flips)


def _whale_dominance_5(b: WindowBatch) -> FloatArray:
    whales = _sum_last(b, "whale_buy_volume_sol", 5) + _sum_last(b, "whale_sell_volume_sol", 5)
    return whales / _sum_last(b, "volume_sol", 5)


def _whale_net_5(b: WindowBatch) -> FloatArray:
    return _sum_last(b, "whale_buy_volume_sol", 5) - _sum_last(b, "whale_sell_volume_sol", 5)


def _unique_wallets_delta_5(b: WindowBatch) -> FloatArray:
    wallets = b.col("unique_wallets")
    return _back(wallets, 0) - _back(wallets, 5)


def _market_cap_velocity_5(b: WindowBatch) -> FloatArray:
    cap, t = b.col("market_cap_close"), b.col("t")
    return (_back(cap, 0) - _back(cap, 5)) / (_back(t, 0) - _back(t, 5))


def _ath_distance_pct(b: WindowBatch) -> FloatArray:
    # fmax skips the NaN padding without the all-NaN warning of nanmax
    return _pct(_back(b.col("price_close"), 0), np.fmax.reduce(b.col("price_high"), axis=1))


def _breakout_10(b: WindowBatch) -> FloatArray:
    close, highest = _back(b.col("price_close"), 0), _prev(b.col("price_high"), 10).max(axis=1)
    return _flag(close > highest, close, highest)


def _dev_sold_flag(b: WindowBatch) -> FloatArray:
    sold = np.fmax.reduce(b.col("dev_sold_amount"), axis=1)
    return _flag(sold > 0, sold)


def _coin_age_seconds(b: WindowBatch) -> FloatArray:
    return _back(b.col("t"), 0) - b.first_seen


def _rows_seen(b: WindowBatch) -> FloatArray:
    return b.lengths.astype(np.float64)


def _seconds_since_prev_row(b: WindowBatch) -> FloatArray:
    t = b.col("t")
    return _back(t, 0) - _back(t, 1)


def _last(name: str) -> FeatureFn:
    def compute(b: WindowBatch) -> FloatArray:
        return _back(b.col(name), 0)

    return compute


def _mean(name: str, k: int) -> FeatureFn:
    def compute(b: WindowBatch) -> FloatArray:
        return _mean_last(b, name, k)

    return compute


def _sum(name: str, k: int) -> FeatureFn:
    def compute(b: WindowBatch) -> FloatArray:
        return _sum_last(b, name, k)

    return compute


_CATALOGUE: tuple[tuple[str, str, FeatureFn], ...] = (
    ("price_change_1", "close vs 1 row before, %", _price_change(1)),
    ("price_change_5", "close vs 5 rows before, %", _price_change(5)),
    ("price_change_10", "close vs 10 rows before, %", _price_change(10)),
    ("price_change_20", "close vs 20 rows before, %", _price_change(20)),
    (
        "price_acceleration_5",
        "change over the last 5 rows minus change over the 5 before, % points",
        _price_acceleration_5,
    ),
    ("volatility_10", "std of the last 10 one-row close changes, %", _volatility_10),
    ("range_pct_last", "high vs low of the scoring row, %", _range_pct_last),
    (
        "volatility_pct_avg_5",
        "mean of the optional volatility_pct column over 5 rows",
        _mean("volatility_pct", 5),
    ),
    ("volume_sum_5", "SOL volume over the last 5 rows", _sum("volume_sol", 5)),
    ("volume_ratio_5", "volume of the scoring row / mean volume of the 5 rows before", _volume_ratio_5),
    ("volume_spike_10", "volume of the scoring row / max volume of the 10 rows before", _volume_spike_10),
    ("buy_volume_share_5", "buy volume / (buy + sell volume) over 5 rows", _buy_volume_share_5),
    ("buy_sell_count_ratio_5", "buys / (sells + 1) over 5 rows", _buy_sell_count_ratio_5),
    (
        "buy_pressure_avg_5",
        "mean of the optional buy_pressure_ratio column over 5 rows",
        _mean("buy_pressure_ratio", 5),
    ),
    (
        "buy_pressure_trend_5",
        "mean buy_pressure_ratio of the last 5 rows minus the 5 before",
        _buy_pressure_trend_5,
    ),
    ("net_volume_avg_5", "mean of buy − sell volume over 5 rows, SOL", _net_volume_avg_5),
    ("net_volume_flips_10", "sign changes of buy − sell volume over 10 rows", _net_volume_flips_10),
    ("whale_dominance_5", "whale buy + sell volume / volume over 5 rows", _whale_dominance_5),
    ("whale_net_5", "whale buy − whale sell volume over 5 rows, SOL", _whale_net_5),
    ("unique_wallets_delta_5", "unique_wallets now minus 5 rows before", _unique_wallets_delta_5),
    ("market_cap_velocity_5", "market cap change per second over 5 rows, SOL/s", _market_cap_velocity_5),
    ("ath_distance_pct", "close vs the highest high in the window, % (≤ 0)", _ath_distance_pct),
    ("breakout_10", "1 if close is above every high of the 10 rows before, else 0", _breakout_10),
    ("dev_sold_flag", "1 if dev_sold_amount > 0 in any row of the window, else 0", _dev_sold_flag),
    (
        "unique_signer_ratio_avg_5",
        "mean of the optional unique_signer_ratio column over 5 rows (low values hint at wash trading)",
        _mean("unique_signer_ratio", 5),
    ),
    ("coin_age_seconds", "seconds since the coin's first row ever", _coin_age_seconds),
    ("rows_seen", f"rows of history in the window (at most {WINDOW_ROWS})", _rows_seen),
    ("seconds_since_prev_row", "seconds between the scoring row and the row before", _seconds_since_prev_row),
    ("phase", "phase_id_at_time of the scoring row", _last("phase_id_at_time")),
    ("last_close", "close price of the scoring row, SOL", _last("price_close")),
    ("market_cap", "market cap at close of the scoring row, SOL", _last("market_cap_close")),
)

#: each coin_metrics column by its own name: its value in the scoring row. Models trained elsewhere on
#: raw metric rows (the predecessor's) name their features this way; coinfleet's own training does not.
_RAW_COLUMNS: tuple[tuple[str, str, FeatureFn], ...] = tuple(
    (column, f"{column} of the scoring row, as in coin_metrics", _last(column)) for column in NUMERIC_COLUMNS
)
_RAW_NAMES = frozenset(NUMERIC_COLUMNS)
#: every feature coinfleet can compute, by name
FEATURES: dict[str, FeatureDef] = {
    name: FeatureDef(name=name, description=description, compute=fn)
    for name, description, fn in (*_CATALOGUE, *_RAW_COLUMNS)
}
#: the features a model trains on unless told otherwise (the catalogue, without the raw columns)
DEFAULT_FEATURES: tuple[str, ...] = tuple(name for name, _, _ in _CATALOGUE)


def validate_feature_names(names: Sequence[str]) -> None:
    """Raise ValueError naming every feature coinfleet cannot compute."""
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(
            f"unknown features {', '.join(map(repr, unknown))}; coinfleet computes: {', '.join(FEATURES)}"
        )


def compute_matrix(windows: Sequence[CoinWindow], names: Sequence[str]) -> FloatArray:
    """Features `names` for each window as float64 [len(windows), len(names)]; every value is NaN or
    a finite float32 (non-finite values and those beyond float32's range are NaN)."""
    return compute_batch(WindowBatch.of_windows(windows), names)


def compute_batch(batch: WindowBatch, names: Sequence[str]) -> FloatArray:
    """Features `names` for each window of a batch, as `compute_matrix` gives them."""
    validate_feature_names(names)
    if not len(batch.lengths):
        return np.empty((0, len(names)), dtype=np.float64)
    matrix = np.empty((len(batch.lengths), len(names)), dtype=np.float64)
    raw = [j for j, name in enumerate(names) if name in _RAW_NAMES]
    # raw columns in one gather: one call per feature cost a fifth of a one-window batch's features
    matrix[:, raw] = batch.scoring_rows([names[j] for j in raw])
    with np.errstate(all="ignore"):
        for j, name in enumerate(names):
            if name not in _RAW_NAMES:
                matrix[:, j] = FEATURES[name].compute(batch)
        # models are fed float32: a value that float32 cannot hold would reach them as ±inf
        matrix[~np.isfinite(matrix.astype(np.float32))] = np.nan
    return matrix


def compute_features(window: CoinWindow, names: Sequence[str]) -> FloatArray:
    """Features `names` of one window as float64 [len(names)]."""
    return _f64(compute_matrix([window], names)[0])
