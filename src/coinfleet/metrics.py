"""One row of `coin_metrics`, exactly the columns an ingester writes (see REFERENCE.md §1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricRow:
    """One bar of one coin, as stored in `coin_metrics`."""

    mint: str
    timestamp: datetime  #: aware UTC bar time
    phase_id_at_time: int | None
    price_open: float
    price_high: float
    price_low: float
    price_close: float
    market_cap_close: float
    volume_sol: float
    buy_volume_sol: float
    sell_volume_sol: float
    num_buys: int
    num_sells: int
    unique_wallets: int
    dev_sold_amount: float | None = None
    buy_pressure_ratio: float | None = None
    whale_buy_volume_sol: float | None = None
    whale_sell_volume_sol: float | None = None
    volatility_pct: float | None = None
    unique_signer_ratio: float | None = None
    net_volume_sol: float | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError(f"metric timestamp for {self.mint} is naive; use an aware UTC datetime")

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> MetricRow:
        """Build from a mapping (e.g. a database row) that holds every column of `coin_metrics`."""
        return cls(**{name: row[name] for name in METRIC_COLUMNS})

    def as_tuple(self) -> tuple[object, ...]:
        """Values in `METRIC_COLUMNS` order, ready for COPY or executemany."""
        return tuple(getattr(self, name) for name in METRIC_COLUMNS)


#: column names of `coin_metrics` in a fixed order (the dataclass field order)
METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(MetricRow))
#: the numeric columns, i.e. everything but the coin id and the time
NUMERIC_COLUMNS: tuple[str, ...] = METRIC_COLUMNS[2:]
