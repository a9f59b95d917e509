"""Feature drift of a model: PSI of its recently scored rows against the training sample stored with it.

The feature values serving computed are not stored with predictions, so they are recomputed here from
`coin_metrics` with the serving code (the same windows), in a worker thread. The measure itself is pure
(`coinfleet.evaluation.drift`); every computation also sets the model's PSI gauges.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from coinfleet.db.sql import query
from coinfleet.evaluation.drift import MIN_LIVE_VALUES, PSI_THRESHOLD, FeatureReference, psi
from coinfleet.evaluation.telemetry import record_drift
from coinfleet.features.spec import compute_matrix
from coinfleet.features.window import WINDOW_ROWS, windows_from_history
from coinfleet.metrics import METRIC_COLUMNS, MetricRow

FloatArray = npt.NDArray[np.float64]
#: drift compares the scored rows of this many hours before a model's newest prediction
DRIFT_WINDOW_HOURS = 6.0
#: at most this many of the newest scored rows (features are recomputed from coin_metrics)
DRIFT_SAMPLE_ROWS = 2000


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
    hours: float  #: the window before the model's newest prediction
    rows: int  #: scored rows compared
    threshold: float  #: PSI above it flags a feature
    features: list[FeatureDrift]  #: worst first
    drifted: list[str]  #: names of the flagged features, worst first
    note: str | None = None


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
    base = ModelDrift(
        model_id=model["id"],
        name=model["name"],
        hours=hours,
        rows=0,
        threshold=PSI_THRESHOLD,
        features=[],
        drifted=[],
    )
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
    drifted = [f.feature for f in features if f.drifted]
    return replace(base, rows=len(x), features=features, drifted=drifted, note=few)


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
        coin = [MetricRow(**{name: r[name] for name in METRIC_COLUMNS}) for r in history]
        for window in windows_from_history(coin, WINDOW_ROWS, history[0]["first_seen"]):
            if window.t[-1] in wanted[mint]:
                windows.append(window)
    return compute_matrix(windows, names) if windows else np.zeros((0, len(names)))
