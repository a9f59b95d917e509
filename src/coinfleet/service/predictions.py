"""Predictions: filtered, newest first, in pages behind an opaque cursor.

Every page reads a bounded number of rows at any table size: it examines at most SCAN_LIMIT stored
predictions (of its model, when one is named) below its cursor. A filter that matches few rows gives a
short or empty page that says how far back it searched, with a cursor to search further back; a coin's
predictions are found through the unique key (model, coin, metric time) instead. A time range's end
moves the first page's start down to the newest prediction before it, so a range far back is found
without paging through everything newer.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from coinfleet.db.sql import query
from coinfleet.service.common import (
    FIRST_PAGE,
    Db,
    as_dict,
    connection,
    decode_cursor,
    encode_cursor,
    model_id_of,
    split_page,
)
from coinfleet.service.schemas import Evaluation, Prediction, PredictionPage, PredictionQuery

#: most stored predictions one page examines (of its model when one is named)
SCAN_LIMIT = 200_000
#: the first page of a time range looks up where the range ends for at most this long (milliseconds)
TIME_START_TIMEOUT_MS = 2_000

_EVALUATION_COLUMNS = (
    "result_at_horizon",
    "result_within",
    "price_at_horizon",
    "change_at_horizon_pct",
    "hit_within",
    "hit_at",
    "evaluated_at",
)


def prediction_from_row(row: Any) -> Prediction:
    """A `list_predictions`-shaped row as a Prediction."""
    data = as_dict(row)
    evaluated = data.pop("evaluated")
    outcome = {name: data.pop(name) for name in _EVALUATION_COLUMNS}
    status = data.pop("evaluation_status")
    data["target"] = json.loads(data["target"])
    data["state"] = "evaluated" if evaluated else "waiting"
    data["evaluation"] = Evaluation(status=status, **outcome) if evaluated else None
    return Prediction.model_validate(data)


async def _time_start(db: Db, until: datetime, model_id: int | None) -> int:
    """The id a first page bounded by metric time `until` starts below: one more than the newest
    prediction made before it. Looked up through the block-range index on metric time, which is quick
    for a time far back (the walk from the newest would be long) and slow for a recent one (the walk is
    short): after TIME_START_TIMEOUT_MS the page starts from the newest prediction instead."""
    try:
        async with connection(db) as conn, conn.transaction():
            await conn.execute(f"SET LOCAL statement_timeout = {TIME_START_TIMEOUT_MS}")
            start = await conn.fetchval(query("prediction_time_start"), until, model_id)
    except asyncpg.QueryCanceledError:
        return FIRST_PAGE
    return FIRST_PAGE if start is None else min(int(start), FIRST_PAGE)


async def list_predictions(db: Db, wanted: PredictionQuery) -> PredictionPage:
    """One page of the predictions `wanted` selects, newest first, examining at most SCAN_LIMIT stored
    predictions; ModelNotFound for an unknown model, InvalidRequest for a cursor that is not a page's
    next_cursor."""
    below = decode_cursor(wanted.cursor)
    model_id = await model_id_of(db, wanted.model)
    if wanted.mint is None and wanted.cursor is None and wanted.until is not None:
        below = await _time_start(db, wanted.until, model_id)
    args = (
        below,
        model_id,
        wanted.tag,
        wanted.state,
        wanted.result,
        wanted.rule,
        wanted.probability_min,
        wanted.probability_max,
        wanted.ath_min,
        wanted.ath_max,
        wanted.change_min,
        wanted.change_max,
        wanted.since,
        wanted.until,
        wanted.limit + 1,
    )
    if wanted.mint is not None:
        rows = await db.fetch(query("list_coin_predictions"), *args, wanted.mint)
    elif model_id is None:
        rows = await db.fetch(query("list_predictions"), *args, SCAN_LIMIT)
    else:
        rows = await db.fetch(query("list_model_predictions"), *args, SCAN_LIMIT)
    items, cursor = split_page([prediction_from_row(r) for r in rows], wanted.limit, lambda p: p.id)
    if cursor is not None or wanted.mint is not None:
        return PredictionPage(items=items, next_cursor=cursor)
    edge = await db.fetch(query("prediction_scan_floor"), below, model_id, SCAN_LIMIT)
    if len(edge) < 2:  # the page examined every prediction below its start: nothing older is left
        return PredictionPage(items=items, next_cursor=None)
    floor = edge[0]
    return PredictionPage(
        items=items,
        next_cursor=encode_cursor(floor["id"]),
        searched_to_id=floor["id"],
        searched_to_time=floor["metric_ts"],
    )
