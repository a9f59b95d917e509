"""A coin's recent rows as numpy arrays: what every feature reads, in serving and in training alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
import numpy.typing as npt

from coinfleet.metrics import NUMERIC_COLUMNS, MetricRow

#: how many rows at or before the scoring time the server fetches per event (features read no more)
WINDOW_ROWS = 30

FloatArray = npt.NDArray[np.float64]
#: a window's row columns in one fixed order: its time, then every numeric metric column
WINDOW_COLUMNS: tuple[str, ...] = ("t", *NUMERIC_COLUMNS)


@dataclass(frozen=True, kw_only=True, eq=False)
class CoinWindow:
    """One coin's rows oldest → newest; the last element is the row at the scoring time t."""

    t: FloatArray  #: epoch seconds of each row
    first_seen: float  #: epoch seconds of the coin's first row ever
    phase_id_at_time: FloatArray
    price_open: FloatArray
    price_high: FloatArray
    price_low: FloatArray
    price_close: FloatArray
    market_cap_close: FloatArray
    volume_sol: FloatArray
    buy_volume_sol: FloatArray
    sell_volume_sol: FloatArray
    num_buys: FloatArray
    num_sells: FloatArray
    unique_wallets: FloatArray
    dev_sold_amount: FloatArray  #: NaN where the optional column was absent
    buy_pressure_ratio: FloatArray
    whale_buy_volume_sol: FloatArray
    whale_sell_volume_sol: FloatArray
    volatility_pct: FloatArray
    unique_signer_ratio: FloatArray
    net_volume_sol: FloatArray

    def __post_init__(self) -> None:
        if len(self.t) == 0:
            raise ValueError("a coin window needs at least the row at the scoring time")
        if any(len(self.column(name)) != len(self.t) for name in NUMERIC_COLUMNS):
            raise ValueError("every column of a coin window must have one value per row")

    def __len__(self) -> int:
        return len(self.t)

    def column(self, name: str) -> FloatArray:
        """The array of one numeric column (or `t`) by name."""
        value: FloatArray = getattr(self, name)
        return value


WINDOW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CoinWindow))


def window_from_rows(rows: Sequence[MetricRow], first_seen: datetime) -> CoinWindow:
    """Build the window from one coin's rows oldest → newest; the last row is the scoring row."""
    arrays = _history_arrays(rows)
    return window_from_arrays(arrays, _epoch(first_seen), 0, len(rows))


def windows_from_history(
    rows: Sequence[MetricRow], window_rows: int = WINDOW_ROWS, first_seen: datetime | None = None
) -> Iterator[CoinWindow]:
    """The window at every row of one coin's history (oldest → newest), as serving would fetch it."""
    if window_rows < 1:
        raise ValueError("window_rows must be >= 1")
    if not rows:
        return
    arrays = _history_arrays(rows)
    start = _epoch(first_seen) if first_seen is not None else float(arrays["t"][0])
    for stop in range(1, len(rows) + 1):
        yield window_from_arrays(arrays, start, max(0, stop - window_rows), stop)


def _history_arrays(rows: Sequence[MetricRow]) -> dict[str, FloatArray]:
    if not rows:
        raise ValueError("a coin window needs at least one row")
    if len({row.mint for row in rows}) != 1:
        raise ValueError("a coin window holds the rows of exactly one coin")
    t = np.array([row.timestamp.timestamp() for row in rows], dtype=np.float64)
    if np.any(np.diff(t) < 0):
        raise ValueError("rows must be ordered oldest → newest")
    arrays = {"t": t}
    for name in NUMERIC_COLUMNS:
        values = [getattr(row, name) for row in rows]
        arrays[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def window_from_arrays(arrays: dict[str, FloatArray], first_seen: float, start: int, stop: int) -> CoinWindow:
    """The window of rows start..stop-1 from column arrays (`t` and every numeric column)."""
    sliced = {name: array[start:stop] for name, array in arrays.items()}
    return CoinWindow(first_seen=first_seen, **sliced)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("first_seen is naive; use an aware UTC datetime")
    return moment.timestamp()
