"""Statistics per model and across models: counts by tag and outcome, hit rates, alert precision and gain."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest
from coinfleet.service.common import Db, model_id_of, rate
from coinfleet.service.schemas import Statistics, StatisticsReport

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A window start from '1h', '24h', '30m', '7d' (before now) or an ISO time; None/'all' for all;
    InvalidRequest for anything else."""
    if text is None or text == "all":
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"since {text!r}: use 1h, 24h, 30m, 7d or an ISO time like 2026-01-01T00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _statistics(row: Any) -> Statistics:
    return Statistics(
        model_id=row["id"],
        name=row["name"],
        status=row["status"],
        predictions=row["predictions"],
        by_tag={tag: row[tag] for tag in ("negative", "positive", "alert")},
        evaluated=row["evaluated"],
        pending=row["pending"],
        by_status={status: row[status] for status in ("ok", "no_data", "invalid_price")},
        by_result_at_horizon={"success": row["horizon_success"], "failed": row["horizon_failed"]},
        by_result_within={"success": row["within_success"], "failed": row["within_failed"]},
        hit_rate_at_horizon=rate(row["horizon_success"], row["horizon_success"] + row["horizon_failed"]),
        hit_rate_within=rate(row["within_success"], row["within_success"] + row["within_failed"]),
        alert_precision_at_horizon=rate(row["alerts_reached_at_horizon"], row["alerts_judged_at_horizon"]),
        alert_precision_within=rate(row["alerts_hit_within"], row["alerts_judged_within"]),
        alert_gain_avg_pct=row["alert_gain_avg_pct"],
        alert_gain_median_pct=row["alert_gain_median_pct"],
    )


async def statistics(db: Db, *, since: datetime | None = None, model: str | None = None) -> StatisticsReport:
    """Statistics of every model (or the one named) and across them, over predictions whose metric time
    is at or after `since` (None: all time); InvalidRequest for a naive `since`, ModelNotFound for an
    unknown model name."""
    if since is not None and since.tzinfo is None:
        raise InvalidRequest(f"since {since} has no time zone; give an aware time, e.g. ...+00:00")
    await model_id_of(db, model)
    rows = [_statistics(r) for r in await db.fetch(query("statistics"), since, model)]
    return StatisticsReport(since=since, models=rows[:-1], overall=rows[-1])
