"""What a lane writes: predictions, scan-cache rows and its cursor, in one statement."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from coinfleet.db.sql import query
from coinfleet.events.cursor import Cursor, Event
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord
from coinfleet.pipeline.rules import CoinState, Tag
from coinfleet.targets import TargetSpec


@dataclass(kw_only=True, slots=True)
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
    # one tuple per row, turned into one list per column by zip (in C); the columns that are never NULL
    # go as one row list each, a 2-D array (asyncpg checks each element of a 1-D array for nesting)
    prediction_columns = _columns(
        (
            p.event.mint, p.event.ts, p.tag.value, p.row.phase_id_at_time, p.event.tx, p.event.seq,
            [p.probability, p.row.price_open, p.row.price_high, p.row.price_low, p.row.price_close,
             p.row.market_cap_close, p.row.volume_sol],
        )
        for p in predictions
    )  # fmt: skip
    state_columns = _columns(
        (
            mint, s.last_scan_ts, s.last_probability, s.last_tag.value, s.ignore_until,
            s.ignore_reason.value if s.ignore_reason else None,
            [s.stored_negative, s.stored_positive, s.stored_alert],
        )
        for mint, s in states.items()
    )  # fmt: skip
    stored = await conn.fetch(
        query("store_batch"),
        model.id,
        model.version,
        model.settings.alert_threshold,
        _target_json(model.target),
        float(model.target.horizon_seconds),
        *(prediction_columns or [[]] * 7),
        *(state_columns or [[]] * 7),
        cursor.tx,
        cursor.seq,
        want_ids,
    )
    return {(r["mint"], r["metric_ts"]): r["id"] for r in stored}


@functools.cache
def _target_json(target: TargetSpec) -> str:
    """The target snapshot stored with each prediction, encoded once per target."""
    return json.dumps(target.to_dict())


def _columns(rows: Iterable[tuple[object, ...]]) -> list[list[object]]:
    """Rows as columns; [] when there are no rows."""
    return [list(column) for column in zip(*rows, strict=True)]


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
