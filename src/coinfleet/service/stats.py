"""Statistics per model and across models: counts by tag and outcome, hit rates, alert precision and gain.

Read from each model's hourly rollup plus the predictions it does not hold yet (the live tail), so a
model with a million predictions costs about what one with a day's worth does
(coinfleet.evaluation.rollups keeps the rollup; the `statistics` query in db/queries/service.sql reads it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest
from coinfleet.service.common import Db, connection, model_id_of, rate
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


#: the statistics query's counters, summed per model and across models
_COUNTS = (
    "predictions", "negative", "positive", "alert", "evaluated", "pending", "ok", "no_data", "invalid_price",
    "horizon_success", "horizon_failed", "within_success", "within_failed", "alerts_judged_at_horizon",
    "alerts_reached_at_horizon", "alerts_judged_within", "alerts_hit_within", "alert_gains",
)  # fmt: skip
#: alert gains are counted in bins this wide (percentage points; coinfleet_gain_bin in SQL)
GAIN_BIN_WIDTH = 0.1


@dataclass(kw_only=True)
class _Sums:
    counts: dict[str, int]
    gain_sum: float | None
    bins: dict[int, tuple[int, float]]  #: gain bin → (gains in it, their sum)


def median_of_bins(bins: Mapping[int, tuple[int, float]]) -> float | None:
    """The median (as percentile_cont(0.5) takes it: the mean of the two middle values for an even
    count) of values known only by their bin (GAIN_BIN_WIDTH wide) and each bin's count and sum: each
    middle value is taken as its bin's mean, so the result is within one bin width of the exact median,
    and exact when the middle values' bins hold nothing else. None when there are no values."""
    total = sum(n for n, _ in bins.values())
    if not total:
        return None
    wanted = sorted({(total - 1) // 2, total // 2})  # ranks of the middle value(s), 0-based
    found: list[float] = []
    seen = 0
    for b in sorted(bins):
        n, bin_sum = bins[b]
        seen += n
        while wanted and wanted[0] < seen:
            found.append(bin_sum / n)
            wanted.pop(0)
    return sum(found) / len(found)


def _sums(row: Any) -> _Sums:
    return _Sums(
        counts={name: row[name] for name in _COUNTS},
        gain_sum=row["alert_gain_sum"],
        bins={
            b: (n, t)
            for b, n, t in zip(
                row["gain_bins"] or [], row["gain_counts"] or [], row["gain_totals"] or [], strict=True
            )
        },
    )


def _statistics(sums: _Sums, model_id: int | None, name: str | None, status: str | None) -> Statistics:
    c = sums.counts
    return Statistics(
        model_id=model_id,
        name=name,
        status=status,  # type: ignore[arg-type]
        predictions=c["predictions"],
        by_tag={tag: c[tag] for tag in ("negative", "positive", "alert")},
        evaluated=c["evaluated"],
        pending=c["pending"],
        by_status={status: c[status] for status in ("ok", "no_data", "invalid_price")},
        by_result_at_horizon={"success": c["horizon_success"], "failed": c["horizon_failed"]},
        by_result_within={"success": c["within_success"], "failed": c["within_failed"]},
        hit_rate_at_horizon=rate(c["horizon_success"], c["horizon_success"] + c["horizon_failed"]),
        hit_rate_within=rate(c["within_success"], c["within_success"] + c["within_failed"]),
        alert_precision_at_horizon=rate(c["alerts_reached_at_horizon"], c["alerts_judged_at_horizon"]),
        alert_precision_within=rate(c["alerts_hit_within"], c["alerts_judged_within"]),
        alert_gain_avg_pct=(
            sums.gain_sum / c["alert_gains"] if c["alert_gains"] and sums.gain_sum is not None else None
        ),
        alert_gain_median_pct=median_of_bins(sums.bins),
    )


def _total(parts: list[_Sums]) -> _Sums:
    gains = [p.gain_sum for p in parts if p.gain_sum is not None]
    return _Sums(
        counts={name: sum(p.counts[name] for p in parts) for name in _COUNTS},
        gain_sum=math.fsum(gains) if gains else None,
        bins={
            b: (
                sum(p.bins[b][0] for p in parts if b in p.bins),
                math.fsum(p.bins[b][1] for p in parts if b in p.bins),
            )
            for b in {b for p in parts for b in p.bins}
        },
    )


async def statistics(db: Db, *, since: datetime | None = None, model: str | None = None) -> StatisticsReport:
    """Statistics of every model (or the one named) and across them, over predictions whose metric time
    is at or after `since` (None: all time); InvalidRequest for a naive `since`, ModelNotFound for an
    unknown model name."""
    if since is not None and since.tzinfo is None:
        raise InvalidRequest(f"since {since} has no time zone; give an aware time, e.g. ...+00:00")
    await model_id_of(db, model)
    async with connection(db) as conn, conn.transaction():
        # the planner cannot know how short the live tail is and prices the read as if it were a third of
        # the table: JIT compiling it took 2 s of a 0.3 s read (1M predictions a model)
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(query("statistics"), since, model)
    sums = [_sums(r) for r in rows]
    return StatisticsReport(
        since=since,
        models=[_statistics(s, r["id"], r["name"], r["status"]) for s, r in zip(sums, rows, strict=True)],
        overall=_statistics(_total(sums), None, None, None),
    )
