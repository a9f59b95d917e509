"""A coin's metric history with what every model did with it."""

from __future__ import annotations

from datetime import datetime

from coinfleet.metrics import MetricRow
from coinfleet.service.schemas.alerts import Alert
from coinfleet.service.schemas.common import Schema
from coinfleet.service.schemas.predictions import Prediction


class CoinModel(Schema):
    """What one model did with one coin in the window."""

    model_id: int
    model_name: str
    predictions: list[Prediction]  #: oldest first; each spans its evaluation window
    alerts: list[Alert]  #: oldest first


class CoinDetail(Schema):
    """A coin's metric rows over a window, and every model's predictions, outcomes and alerts for it."""

    mint: str
    since: datetime | None  #: window start (None: unbounded)
    until: datetime | None  #: window end, exclusive (None: unbounded)
    rows: list[MetricRow]  #: oldest first; the newest MAX_COIN_ROWS when the window holds more
    rows_truncated: bool
    models: list[CoinModel]
