"""Predictions: filtered, newest first, in pages behind an opaque cursor."""

from __future__ import annotations

import json
from typing import Any

from coinfleet.db.sql import query
from coinfleet.service.common import Db, as_dict, decode_cursor, model_id_of, split_page
from coinfleet.service.schemas import Evaluation, Prediction, PredictionPage, PredictionQuery

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


async def list_predictions(db: Db, wanted: PredictionQuery) -> PredictionPage:
    """One page of the predictions `wanted` selects, newest first; ModelNotFound for an unknown model,
    InvalidRequest for a cursor that is not a page's next_cursor."""
    args = (
        decode_cursor(wanted.cursor),
        await model_id_of(db, wanted.model),
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
    if wanted.mint is None:
        rows = await db.fetch(query("list_predictions"), *args)
    else:
        rows = await db.fetch(query("list_coin_predictions"), *args, wanted.mint)
    items, cursor = split_page([prediction_from_row(r) for r in rows], wanted.limit, lambda p: p.id)
    return PredictionPage(items=items, next_cursor=cursor)
