"""Coin detail: a coin's metric rows over a window, and what every model predicted and sent for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest
from coinfleet.metrics import MetricRow
from coinfleet.service.common import FIRST_PAGE, Db, as_dict
from coinfleet.service.predictions import prediction_from_row
from coinfleet.service.schemas import MAX_COIN_ROWS, Alert, CoinDetail, CoinModel, Prediction


def _check_window(since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} {value} has no time zone; give an aware time, e.g. ...+00:00")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest(f"since {since} is not before until {until}")


async def _predictions(db: Db, mint: str, since: datetime | None, until: datetime | None) -> list[Prediction]:
    nothing = (None,) * 11  # $2-$12: no filter but the window
    rows = await db.fetch(
        query("list_coin_predictions"), FIRST_PAGE, *nothing, since, until, MAX_COIN_ROWS, mint
    )
    return [prediction_from_row(r) for r in reversed(rows)]


def _per_model(predictions: Sequence[Prediction], alerts: Sequence[Alert]) -> list[CoinModel]:
    names = {p.model_id: p.model_name for p in predictions} | {a.model_id: a.model_name for a in alerts}
    return [
        CoinModel(
            model_id=model_id,
            model_name=names[model_id],
            predictions=[p for p in predictions if p.model_id == model_id],
            alerts=[a for a in alerts if a.model_id == model_id],
        )
        for model_id in sorted(names)
    ]


async def coin_detail(
    db: Db, mint: str, *, since: datetime | None = None, until: datetime | None = None
) -> CoinDetail:
    """A coin's rows in [since, until) (the newest MAX_COIN_ROWS), each model's predictions with their
    evaluation windows and outcomes, and its alerts; InvalidRequest for a naive or empty window."""
    _check_window(since, until)
    rows = await db.fetch(query("coin_metric_rows"), mint, since, until, MAX_COIN_ROWS + 1)
    alerts = await db.fetch(query("coin_alerts"), mint, since, until, MAX_COIN_ROWS)
    return CoinDetail(
        mint=mint,
        since=since,
        until=until,
        rows=[MetricRow.from_mapping(r) for r in reversed(rows[:MAX_COIN_ROWS])],
        rows_truncated=len(rows) > MAX_COIN_ROWS,
        models=_per_model(
            await _predictions(db, mint, since, until),
            [Alert.model_validate(as_dict(a)) for a in reversed(alerts)],
        ),
    )
