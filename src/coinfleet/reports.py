"""The one read side for statistics: the CLI, API, UI and MCP all read model statistics through here.

Rates count only judged predictions: "not_applicable" results (no data, invalid price) are left out
of every denominator and reported as counts. Definitions: docs/evaluation.md.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from coinfleet.db.sql import query
from coinfleet.errors import ConfigError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


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


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _stats(row: asyncpg.Record) -> ModelStats:
    return ModelStats(
        model_id=row["id"],
        name=row["name"],
        status=row["status"],
        predictions=row["predictions"],
        by_tag={tag: row[tag] for tag in ("negative", "positive", "alert")},
        evaluated=row["evaluated"],
        pending=row["pending"],
        by_status={status: row[status] for status in ("ok", "no_data", "invalid_price")},
        hit_rate_at_horizon=_rate(row["horizon_success"], row["horizon_success"] + row["horizon_failed"]),
        hit_rate_within=_rate(row["within_success"], row["within_success"] + row["within_failed"]),
        alert_precision_at_horizon=_rate(row["alerts_reached_at_horizon"], row["alerts_judged_at_horizon"]),
        alert_precision_within=_rate(row["alerts_hit_within"], row["alerts_judged_within"]),
        alert_gain_avg_pct=row["alert_gain_avg_pct"],
        alert_gain_median_pct=row["alert_gain_median_pct"],
    )


async def model_stats(
    conn: asyncpg.Connection, *, since: datetime | None = None, model: str | None = None
) -> list[ModelStats]:
    """Statistics of every model (or the one named), over predictions made at or after `since`."""
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be an aware datetime")
    return [_stats(row) for row in await conn.fetch(query("model_stats"), since, model)]


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A window start from '1h', '24h', '30m', '7d' (before now) or an ISO time; None/'all' for all."""
    if text is None or text == "all":
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: use 1h, 24h, 30m, 7d or an ISO time like 2026-01-01T00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
