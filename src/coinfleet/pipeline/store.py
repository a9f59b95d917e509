"""What a lane writes: predictions and scan-cache rows (the caller owns the transaction)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from coinfleet.db.sql import query
from coinfleet.events.cursor import Event
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


async def insert_predictions(
    conn: asyncpg.Connection, model: ModelRecord, predictions: Sequence[NewPrediction]
) -> dict[tuple[str, datetime], int]:
    """Store the batch's predictions (target and threshold as a snapshot); new ids by (coin, metric time)."""
    if not predictions:
        return {}
    rows = [p.row for p in predictions]
    inserted = await conn.fetch(
        query("insert_predictions"),
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
    )
    return {(r["mint"], r["metric_ts"]): r["id"] for r in inserted}


async def save_states(conn: asyncpg.Connection, model_id: int, states: dict[str, CoinState]) -> None:
    """Upsert the scan-cache rows of the coins a batch touched."""
    if not states:
        return
    items = list(states.items())
    await conn.execute(
        query("upsert_scan_state"),
        model_id,
        [mint for mint, _ in items],
        [s.last_scan_ts for _, s in items],
        [s.last_probability for _, s in items],
        [s.last_tag.value for _, s in items],
        [s.ignore_until for _, s in items],
        [s.ignore_reason.value if s.ignore_reason else None for _, s in items],
        [s.stored_negative for _, s in items],
        [s.stored_positive for _, s in items],
        [s.stored_alert for _, s in items],
    )


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
