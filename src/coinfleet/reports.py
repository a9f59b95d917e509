"""The one read side for statistics: the CLI, API, UI and MCP all read model statistics through here.

Rates count only judged predictions: "not_applicable" results (no data, invalid price) are left out
of every denominator and reported as counts. Besides counts and rates: coverage (judged / no_data /
pending), the as-of rule beside the former one, calibration (Brier, reliability table) and feature
drift (PSI against the training distribution stored with the model). Definitions: docs/evaluation.md.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from coinfleet.db.sql import query
from coinfleet.errors import ConfigError
from coinfleet.evaluation.calibration import DEFAULT_BUCKETS, BucketSums, Calibration, calibration_from_sums
from coinfleet.evaluation.drift import MIN_LIVE_VALUES, PSI_THRESHOLD, FeatureReference, psi
from coinfleet.evaluation.telemetry import record_drift
from coinfleet.features.spec import compute_matrix
from coinfleet.features.window import WINDOW_ROWS, windows_from_history
from coinfleet.feed.writer import metric_row

FloatArray = npt.NDArray[np.float64]
#: drift compares the scored rows of this many hours before a model's newest prediction
DRIFT_WINDOW_HOURS = 6.0
#: at most this many of the newest scored rows (features are recomputed from coin_metrics)
DRIFT_SAMPLE_ROWS = 2000

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
    judged_by_first_row_rule: int  #: outcomes stored before the as-of rule (migration 0011 kept them)
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
        judged_by_first_row_rule=row["judged_by_first_row_rule"],
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


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """How many of a model's predictions whose horizon ended by a clock got a judged outcome."""

    model_id: int
    name: str
    ended: int  #: horizon ended at or before the clock
    judged: int  #: status ok
    no_data: int
    invalid_price: int
    pending: int  #: horizon ended, not settled yet (end + grace not passed, or the loop has not run)
    running: int  #: horizon runs past the clock

    @property
    def judged_share(self) -> float | None:
        """judged / ended."""
        return _rate(self.judged, self.ended)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "judged_share": self.judged_share}


async def model_coverage(conn: asyncpg.Connection, clock: datetime) -> list[Coverage]:
    """Per model, the outcomes of the predictions whose horizon ended by `clock` (e.g. a file's end)."""
    return [
        Coverage(**{k: row[k] for k in Coverage.__dataclass_fields__})
        for row in await conn.fetch(query("model_coverage"), clock)
    ]


@dataclass(frozen=True, kw_only=True)
class RuleComparison:
    """One model's rates under the as-of rule beside the former first-row-in-grace rule."""

    model_id: int
    name: str
    judged: int  #: status ok, as of the horizon end
    judged_former: int  #: the coin had a row in [end, end + grace]
    hit_rate_at_horizon: float | None
    hit_rate_at_horizon_former: float | None
    hit_rate_within: float | None
    hit_rate_within_former: float | None
    alert_precision_at_horizon: float | None
    alert_precision_at_horizon_former: float | None
    alert_precision_within: float | None
    alert_precision_within_former: float | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _comparison(row: asyncpg.Record) -> RuleComparison:
    return RuleComparison(
        model_id=row["id"],
        name=row["name"],
        judged=row["judged"],
        judged_former=row["judged_former"],
        hit_rate_at_horizon=_rate(row["horizon_success"], row["horizon_judged"]),
        hit_rate_at_horizon_former=_rate(row["horizon_success_former"], row["horizon_judged_former"]),
        hit_rate_within=_rate(row["within_success"], row["judged"]),
        hit_rate_within_former=_rate(row["within_success_former"], row["judged_former"]),
        alert_precision_at_horizon=_rate(row["alerts_reached"], row["alerts_judged"]),
        alert_precision_at_horizon_former=_rate(row["alerts_reached_former"], row["alerts_judged_former"]),
        alert_precision_within=_rate(row["alerts_hit"], row["alerts_ok"]),
        alert_precision_within_former=_rate(row["alerts_hit_former"], row["alerts_ok_former"]),
    )


async def rule_comparison(conn: asyncpg.Connection) -> list[RuleComparison]:
    """Per model, hit rates and alert precision by the as-of rule and by the former rule, side by side."""
    return [_comparison(row) for row in await conn.fetch(query("rule_comparison"))]


async def model_calibration(
    conn: asyncpg.Connection,
    *,
    since: datetime | None = None,
    model: str | None = None,
    buckets: int = DEFAULT_BUCKETS,
) -> dict[int, Calibration]:
    """Brier score and reliability table per model id over judged predictions made at or after `since`."""
    sums: dict[int, list[BucketSums]] = {}
    for row in await conn.fetch(query("calibration_sums"), since, model, buckets):
        sums.setdefault(row["model_id"], []).append(
            BucketSums(**{k: row[k] for k in BucketSums.__dataclass_fields__})
        )
    return {model_id: calibration_from_sums(rows, buckets) for model_id, rows in sums.items()}


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    """One feature's PSI of recent scored rows against the model's training sample."""

    feature: str
    psi: float | None  #: None with too few live values
    drifted: bool  #: psi above the threshold


@dataclass(frozen=True, kw_only=True)
class ModelDrift:
    """A model's drift per feature, worst first; `note` says why there is none."""

    model_id: int
    name: str
    rows: int  #: scored rows compared
    threshold: float
    features: list[FeatureDrift]
    note: str | None = None

    @property
    def drifted(self) -> list[str]:
        """Names of the features over the threshold."""
        return [f.feature for f in self.features if f.drifted]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "drifted": self.drifted}


async def model_drift(
    conn: asyncpg.Connection,
    *,
    model: str | None = None,
    status: str | None = None,
    hours: float = DRIFT_WINDOW_HOURS,
    sample: int = DRIFT_SAMPLE_ROWS,
) -> list[ModelDrift]:
    """PSI per feature of each model (the one named, or every one not deleted, or with this status) over
    its scored rows in the `hours` before its newest prediction (at most `sample` of the newest), against
    the training distribution stored with the model; also sets the PSI gauges."""
    if hours <= 0 or sample < 1:
        raise ValueError("drift needs a window of more than 0 hours and a sample of at least 1 row")
    return [
        await _drift_of(conn, row, hours=hours, sample=sample)
        for row in await conn.fetch(query("drift_models"), model, status)
    ]


async def _drift_of(
    conn: asyncpg.Connection, model: asyncpg.Record, *, hours: float, sample: int
) -> ModelDrift:
    base = ModelDrift(model_id=model["id"], name=model["name"], rows=0, threshold=PSI_THRESHOLD, features=[])
    if not model["reference"]:
        return replace(base, note="no training distribution stored (retrain with coinfleet train)")
    references = _references(model["reference"])
    names = [name for name in model["features"] if name in references]
    scored = await conn.fetch(query("recent_scored"), model["id"], hours * 3600.0, sample)
    x = await scored_features(conn, [(r["mint"], r["metric_ts"]) for r in scored], names)
    features = [_feature_drift(name, references[name], x[:, j]) for j, name in enumerate(names)]
    record_drift(model["name"], {f.feature: f.psi for f in features}, PSI_THRESHOLD)
    features.sort(key=lambda f: -1.0 if f.psi is None else f.psi, reverse=True)
    few = f"fewer than {MIN_LIVE_VALUES} scored rows in the window" if len(x) < MIN_LIVE_VALUES else None
    return replace(base, rows=len(x), features=features, note=few)


def _references(stored: str | dict[str, Any]) -> dict[str, FeatureReference]:
    data = json.loads(stored) if isinstance(stored, str) else stored
    return {name: FeatureReference.from_dict(ref) for name, ref in data.items()}


def _feature_drift(name: str, reference: FeatureReference, values: FloatArray) -> FeatureDrift:
    value = psi(reference, values)
    return FeatureDrift(feature=name, psi=value, drifted=value is not None and value > PSI_THRESHOLD)


async def scored_features(
    conn: asyncpg.Connection, scored: Sequence[tuple[str, datetime]], names: Sequence[str]
) -> FloatArray:
    """The feature rows serving computed at the scored (coin, time) pairs, recomputed from coin_metrics
    (in a worker thread, so a process that serves lanes keeps its event loop free)."""
    records = await conn.fetch(
        query("feature_rows"), [m for m, _ in scored], [t for _, t in scored], WINDOW_ROWS
    )
    return await asyncio.to_thread(_features_at, records, scored, names)


def _features_at(
    records: Sequence[asyncpg.Record], scored: Sequence[tuple[str, datetime]], names: Sequence[str]
) -> FloatArray:
    wanted: dict[str, set[float]] = {}
    for mint, ts in scored:
        wanted.setdefault(mint, set()).add(ts.timestamp())
    windows = []
    for mint, rows in groupby(records, key=lambda r: r["mint"]):
        history = list(rows)
        coin = [metric_row(r) for r in history]
        for window in windows_from_history(coin, WINDOW_ROWS, history[0]["first_seen"]):
            if window.t[-1] in wanted[mint]:
                windows.append(window)
    return compute_matrix(windows, names) if windows else np.zeros((0, len(names)))
