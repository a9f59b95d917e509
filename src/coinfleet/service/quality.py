"""How truthful and how well-calibrated each model's outcomes are: coverage, the as-of rule beside the
former rule, calibration (Brier score, reliability table) and feature drift (PSI).

Definitions: docs/evaluation.md. Calibration and drift are computed by the pure functions in
`coinfleet.evaluation` (the same ones `coinfleet train` reports on its validation split).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest
from coinfleet.evaluation.calibration import DEFAULT_BUCKETS, BucketSums, calibration_from_sums
from coinfleet.models.drift import DRIFT_SAMPLE_ROWS, DRIFT_WINDOW_HOURS, model_drift
from coinfleet.service.common import Db, connection, rate
from coinfleet.service.schemas import (
    CalibrationFigures,
    CalibrationReport,
    Coverage,
    DriftReport,
    RuleComparison,
)


async def coverage(db: Db, clock: datetime) -> list[Coverage]:
    """Per model, the outcomes of the predictions whose horizon ended by `clock` (e.g. a file's end)."""
    rows = await db.fetch(query("model_coverage"), clock)
    return [Coverage(**dict(r.items()), judged_share=rate(r["judged"], r["ended"])) for r in rows]


def _comparison(row: Any) -> RuleComparison:
    return RuleComparison(
        model_id=row["id"],
        name=row["name"],
        judged=row["judged"],
        judged_former=row["judged_former"],
        hit_rate_at_horizon=rate(row["horizon_success"], row["horizon_judged"]),
        hit_rate_at_horizon_former=rate(row["horizon_success_former"], row["horizon_judged_former"]),
        hit_rate_within=rate(row["within_success"], row["judged"]),
        hit_rate_within_former=rate(row["within_success_former"], row["judged_former"]),
        alert_precision_at_horizon=rate(row["alerts_reached"], row["alerts_judged"]),
        alert_precision_at_horizon_former=rate(row["alerts_reached_former"], row["alerts_judged_former"]),
        alert_precision_within=rate(row["alerts_hit"], row["alerts_ok"]),
        alert_precision_within_former=rate(row["alerts_hit_former"], row["alerts_ok_former"]),
    )


async def rule_comparison(db: Db) -> list[RuleComparison]:
    """Per model, hit rates and alert precision as of the horizon end beside the former rule."""
    return [_comparison(row) for row in await db.fetch(query("rule_comparison"))]


#: the bucket count the hourly rollups keep calibration sums for (migration 0021)
ROLLED_BUCKETS = 10


async def calibration(
    db: Db, *, since: datetime | None = None, model: str | None = None, buckets: int = DEFAULT_BUCKETS
) -> list[CalibrationReport]:
    """Brier score and reliability table of every model (or the one named) with judged predictions made
    at or after `since`; InvalidRequest for a naive `since` or fewer than 2 buckets."""
    if since is not None and since.tzinfo is None:
        raise InvalidRequest(f"since {since} has no time zone; give an aware time, e.g. ...+00:00")
    if buckets < 2:
        raise InvalidRequest(f"buckets={buckets}: a reliability table needs at least 2 buckets")
    sums: dict[tuple[int, str], list[BucketSums]] = {}
    validation: dict[int, CalibrationFigures | None] = {}
    if buckets == ROLLED_BUCKETS:  # kept in the hourly rollups: bounded at any history
        async with connection(db) as conn, conn.transaction():
            await conn.execute("SET LOCAL jit = off")  # as in stats.statistics
            rows = await conn.fetch(query("calibration_sums_rolled"), since, model)
    else:  # any other bucket count is summed from every judged prediction in the window
        rows = await db.fetch(query("calibration_sums"), since, model, buckets)
    for row in rows:
        fields = {k: row[k] for k in BucketSums.__dataclass_fields__}
        sums.setdefault((row["model_id"], row["name"]), []).append(BucketSums(**fields))
        validation[row["model_id"]] = _validation(row["validation"])
    return [
        CalibrationReport(
            model_id=model_id,
            name=name,
            validation=validation[model_id],
            **asdict(calibration_from_sums(rows, buckets)),
        )
        for (model_id, name), rows in sums.items()
    ]


def _validation(stored: str | None) -> CalibrationFigures | None:
    """The calibration `coinfleet train` stored for the validation split; None when there is none (a
    model imported with other training metrics, or trained before calibration was stored)."""
    if stored is None:
        return None
    try:
        return CalibrationFigures.model_validate_json(stored)
    except ValidationError:
        return None


async def drift(
    db: Db,
    *,
    model: str | None = None,
    hours: float = DRIFT_WINDOW_HOURS,
    sample: int = DRIFT_SAMPLE_ROWS,
) -> list[DriftReport]:
    """Feature drift of every model (or the one named): PSI of its scored rows in the `hours` before its
    newest prediction (at most `sample`) against its training sample; InvalidRequest for a bad window."""
    if hours <= 0 or sample < 1:
        raise InvalidRequest(f"hours={hours}, sample={sample}: give hours > 0 and a sample of at least 1")
    async with connection(db) as conn:
        found = await model_drift(conn, model=model, hours=hours, sample=sample)
    return [DriftReport.model_validate(asdict(d)) for d in found]
