"""Model statistics in their first shape, kept while callers move to `coinfleet.service.stats` (which
reads the same query and adds the raw counts and a row across models)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from coinfleet.service.stats import parse_since, statistics

__all__ = ["ModelStats", "model_stats", "parse_since"]


@dataclass(frozen=True, kw_only=True)
class ModelStats:
    """One model's statistics over a window of prediction times."""

    model_id: int
    name: str
    status: str
    predictions: int
    by_tag: dict[str, int]  #: negative / positive / alert
    evaluated: int
    pending: int
    by_status: dict[str, int]  #: ok / no_data / invalid_price
    hit_rate_at_horizon: float | None  #: success / (success + failed), judged at the horizon end
    hit_rate_within: float | None  #: the same, judged by "target hit at any time within the horizon"
    alert_precision_at_horizon: float | None  #: alerts whose target was reached at the horizon end
    alert_precision_within: float | None  #: alerts whose target was hit within the horizon
    alert_gain_avg_pct: float | None  #: mean change at horizon end after alerts, in the target's direction
    alert_gain_median_pct: float | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


async def model_stats(
    conn: asyncpg.Connection, *, since: datetime | None = None, model: str | None = None
) -> list[ModelStats]:
    """Statistics of every model (or the one named), over predictions made at or after `since`."""
    report = await statistics(conn, since=since, model=model)
    names = {f for f in ModelStats.__dataclass_fields__}
    return [ModelStats(**s.model_dump(include=names)) for s in report.models]
