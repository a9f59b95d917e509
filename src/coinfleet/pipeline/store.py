"""What a lane writes: predictions, scan-cache rows and its cursor, in one statement."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from coinfleet.db.sql import query
from coinfleet.events.cursor import Cursor, Event
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord
from coinfleet.pipeline.rules import CoinState, Tag


@dataclass(frozen=True, kw_only=True, slots=True)
class NewPrediction:
    """One prediction to store, with the metric row it was made on."""

    event: Event
    row: MetricRow
    probability: float
    tag: Tag


async def store_batch(
    conn: asyncpg.Connection,
    model: ModelRecord,
    predictions: Sequence[NewPrediction],
    states: Mapping[str, CoinState],
    cursor: Cursor,
    *,
    want_ids: bool = False,
) -> dict[tuple[str, datetime], int]:
    """Store a batch's predictions (target and threshold as a snapshot), its scan-cache changes and the
    model's cursor in one statement; with `want_ids` the new prediction ids by (coin, metric time)."""
    rows = [p.row for p in predictions]
    items = list(states.items())
    stored = await conn.fetch(
        query("store_batch"),
        model.id,
        model.version,
        model.settings.alert_threshold,
        json.dumps(model.target.to_dict()),
        float(model.target.horizon_seconds),
        [p.event.mint for p in predictions],
        [p.event.ts for p in predictions],
        [p.probability for p in predictions],
        [1 if p.probability >= 0.5 else 0 for p in predictions],
        [p.tag.value for p in predictions],
        [r.phase_id_at_time for r in rows],
        [r.price_open for r in rows],
        [r.price_high for r in rows],
        [r.price_low for r in rows],
        [r.price_close for r in rows],
        [r.market_cap_close for r in rows],
        [r.volume_sol for r in rows],
        [p.event.tx for p in predictions],
        [p.event.seq for p in predictions],
        [mint for mint, _ in items],
        [s.last_scan_ts for _, s in items],
        [s.last_probability for _, s in items],
        [s.last_tag.value for _, s in items],
        [s.ignore_until for _, s in items],
        [s.ignore_reason.value if s.ignore_reason else None for _, s in items],
        [s.stored_negative for _, s in items],
        [s.stored_positive for _, s in items],
        [s.stored_alert for _, s in items],
        cursor.tx,
        cursor.seq,
        want_ids,
    )
    return {(r["mint"], r["metric_ts"]): r["id"] for r in stored}


async def load_states(conn: asyncpg.Connection, model_id: int) -> dict[str, CoinState]:
    """The model's whole scan cache."""
    return {
        r["mint"]: CoinState(
            last_scan_ts=r["last_scan_ts"],
            last_probability=r["last_probability"],
            last_tag=Tag(r["last_tag"]),
            ignore_until=r["ignore_until"],
            ignore_reason=Tag(r["ignore_reason"]) if r["ignore_reason"] else None,
            stored_negative=r["stored_negative"],
            stored_positive=r["stored_positive"],
            stored_alert=r["stored_alert"],
        )
        for r in await conn.fetch(query("load_scan_state"), model_id)
    }


async def prediction_counts(conn: asyncpg.Connection, model_id: int) -> dict[str, int]:
    """Stored predictions of a model by tag."""
    return {r["tag"]: r["n"] for r in await conn.fetch(query("prediction_counts"), model_id)}
