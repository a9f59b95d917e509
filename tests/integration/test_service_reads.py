"""The read side of the service layer on real PostgreSQL: models with lanes, predictions, coins, alerts,
statistics, lag and health."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pydantic
import pytest
from test_evaluation_support import CONFIG, T0, Bar, insert_bars, insert_model, insert_prediction

from coinfleet.db.sql import query
from coinfleet.errors import AlertNotFound, InvalidRequest, ModelNotFound, NotFound
from coinfleet.evaluation.rounds import drain
from coinfleet.service import alerts, coins, health, models, predictions, stats
from coinfleet.service.common import FIRST_PAGE, encode_cursor
from coinfleet.service.schemas import AlertQuery, PredictionQuery
from coinfleet.targets import TargetSpec
from support import insert_many_predictions

UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)


async def _fleet(conn: asyncpg.Connection) -> tuple[int, int]:
    """Two models: "up" with a webhook and predictions on three coins, "down" quarantined with one."""
    up = await insert_model(conn, "up", UP10, webhook_url="http://127.0.0.1:9/hook", alert_threshold=0.8)
    down = await insert_model(conn, "down", UP10)
    await conn.execute(
        "UPDATE coinfleet_models SET status = 'quarantined', status_reason = 'runner crashed 5 times'"
        " WHERE id = $1",
        down,
    )
    await insert_bars(conn, "rise", [Bar(at=60, close=120), Bar(at=200, close=120)])  # +20 %
    await insert_bars(conn, "fall", [Bar(at=60, close=85)])  # -15 %
    await insert_prediction(conn, up, mint="rise", at=0, p0=100, target=UP10)  # alert, success
    await insert_prediction(conn, up, mint="fall", at=0, p0=100, target=UP10, prediction=0)  # success
    await insert_prediction(conn, up, mint="rise", at=150, p0=100, target=UP10)  # waiting
    await insert_prediction(conn, down, mint="rise", at=0, p0=100, target=UP10)  # alert, success
    return up, down


async def _alert(conn: asyncpg.Connection, model_id: int, mint: str, at: float, state: str) -> int:
    alert_id: int = await conn.fetchval(
        "INSERT INTO coinfleet_alerts (model_id, mint, metric_ts, tag, url, idempotency_key, body, state)"
        " VALUES ($1, $2, $3, 'alert', 'http://127.0.0.1:9/hook', $4, '{}', $5) RETURNING id",
        model_id,
        mint,
        T0 + timedelta(seconds=at),
        f"{model_id}-{mint}-{at}",
        state,
    )
    return alert_id


async def test_models_show_settings_lane_lag_and_quarantine(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        up, _down = await _fleet(conn)
        await conn.execute(  # the cursor at the newest event (the horizon is the whole server's)
            "INSERT INTO coinfleet_cursors (model_id, tx, seq)"
            " SELECT $1, tx, seq FROM coinfleet_events ORDER BY tx DESC, seq DESC LIMIT 1",
            up,
        )
        await insert_bars(conn, "late", [Bar(at=300 + i, close=1.0) for i in range(3)])
        await _alert(conn, up, "rise", 0, "dead")
        await _alert(conn, up, "rise", 150, "pending")
    listed = await models.list_models(pool)
    assert [m.name for m in listed] == ["up", "down"]
    shown = await models.show_model(pool, "up")
    assert shown.model_dump(exclude={"lane": {"lag_seconds"}}) == listed[0].model_dump(
        exclude={"lane": {"lag_seconds"}}
    )
    assert (
        shown.settings["webhook_url"] == "http://127.0.0.1:9/hook"
        and shown.settings["alert_threshold"] == 0.8
        and "webhook_secret" not in shown.settings
    )
    assert shown.target.description == "up 10% in 60s"
    lane = shown.lane
    assert (lane.lag_events, lane.lag_events_capped, lane.alerts_pending, lane.alerts_dead) == (
        3,
        False,
        1,
        1,
    )
    assert lane.lag_seconds >= 0
    assert (listed[1].status, listed[1].status_reason) == ("quarantined", "runner crashed 5 times")
    assert listed[1].lane.lag_events == 0, "a model without a cursor has no lag"
    report = await models.lag(pool)
    assert [x.name for x in report.lanes] == ["up", "down"] and report.horizon_age_seconds >= 0


async def test_unknown_model_is_not_found(pool: asyncpg.Pool) -> None:
    with pytest.raises(ModelNotFound, match="coinfleet models list"):
        await models.show_model(pool, "nope")
    with pytest.raises(NotFound):
        await predictions.list_predictions(pool, PredictionQuery(model="nope"))
    with pytest.raises(ModelNotFound):
        await stats.statistics(pool, model="nope")


async def test_prediction_filters(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        _up, _down = await _fleet(conn)
    await drain(pool, CONFIG)

    async def ids(**filters: object) -> list[tuple[str, str, float]]:
        page = await predictions.list_predictions(pool, PredictionQuery.model_validate(filters))
        return [(p.model_name, p.mint, (p.metric_ts - T0).total_seconds()) for p in page.items]

    assert await ids() == [("down", "rise", 0), ("up", "rise", 150), ("up", "fall", 0), ("up", "rise", 0)]
    assert await ids(model="up", tag="alert") == [("up", "rise", 150), ("up", "rise", 0)]
    assert await ids(state="waiting") == [("up", "rise", 150)]
    assert await ids(state="evaluated", mint="rise") == [("down", "rise", 0), ("up", "rise", 0)]
    assert await ids(result="success", probability_max=0.5) == [("up", "fall", 0)]
    assert await ids(result="failed") == []
    assert await ids(change_min=15) == [("down", "rise", 0), ("up", "rise", 0)]
    assert await ids(ath_max=-10) == [("up", "fall", 0)]
    assert await ids(since=T0 + timedelta(seconds=100), until=T0 + timedelta(seconds=150)) == []
    assert await ids(since=T0 + timedelta(seconds=100), until=T0 + timedelta(seconds=151)) == [
        ("up", "rise", 150)
    ]
    page = await predictions.list_predictions(pool, PredictionQuery(mint="fall"))
    (fall,) = page.items
    assert fall.state == "evaluated" and fall.evaluation is not None
    assert (
        fall.evaluation.result_at_horizon == "success"
        and fall.evaluation.change_at_horizon_pct == pytest.approx(-15)
    )
    assert fall.evaluate_at == fall.metric_ts + timedelta(seconds=60) and fall.target["direction"] == "up"
    waiting = (await predictions.list_predictions(pool, PredictionQuery(state="waiting"))).items[0]
    assert waiting.evaluation is None and waiting.state == "waiting"


@pytest.mark.parametrize("mint", [None, "rise"])
async def test_pages_walk_every_prediction_once(pool: asyncpg.Pool, mint: str | None) -> None:
    async with pool.acquire() as conn:
        _up, down = await _fleet(conn)
        for i in range(7):
            await insert_prediction(conn, down, mint="rise", at=1000 + i, p0=1, target=UP10)
    everything = await predictions.list_predictions(pool, PredictionQuery(mint=mint, limit=500))
    seen: list[int] = []
    cursor = None
    while True:
        page = await predictions.list_predictions(pool, PredictionQuery(mint=mint, limit=3, cursor=cursor))
        seen += [p.id for p in page.items]
        assert len(page.items) <= 3
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [p.id for p in everything.items] and len(seen) == (11 if mint is None else 10)
    assert seen == sorted(seen, reverse=True)


async def test_bad_queries_are_refused_before_any_sql(pool: asyncpg.Pool) -> None:
    with pytest.raises(InvalidRequest, match="next_cursor"):
        await predictions.list_predictions(pool, PredictionQuery(cursor="bm90LWEtY3Vyc29y"))
    with pytest.raises(InvalidRequest):
        await alerts.list_alerts(pool, AlertQuery(cursor="%%%"))
    for bad in (
        {"probability_min": 0.9, "probability_max": 0.1},
        {"limit": 501},
        {"limit": 0},
        {"tag": "maybe"},
        {"since": "2026-01-01T00:00:00"},
        {"colour": "red"},
    ):
        with pytest.raises(pydantic.ValidationError):
            PredictionQuery.model_validate(bad)
    assert encode_cursor(42) != "42", "cursors are opaque"


async def test_coin_detail(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        up, _down = await _fleet(conn)
        dead = await _alert(conn, up, "rise", 0, "dead")
        await _alert(conn, up, "fall", 0, "dead")
    await drain(pool, CONFIG)
    detail = await coins.coin_detail(pool, "rise")
    assert [(r.timestamp - T0).total_seconds() for r in detail.rows] == [60, 200]
    assert not detail.rows_truncated
    assert [(m.model_name, len(m.predictions)) for m in detail.models] == [("up", 2), ("down", 1)]
    first = detail.models[0].predictions[0]
    assert (first.metric_ts - T0).total_seconds() == 0 and first.evaluation is not None
    assert [a.id for a in detail.models[0].alerts] == [dead] and detail.models[1].alerts == []
    window = await coins.coin_detail(
        pool, "rise", since=T0 + timedelta(seconds=100), until=T0 + timedelta(hours=1)
    )
    assert [r.price_close for r in window.rows] == [120]
    assert [(m.model_name, len(m.predictions)) for m in window.models] == [("up", 1)]
    assert (await coins.coin_detail(pool, "unknown")).models == []
    with pytest.raises(InvalidRequest):
        await coins.coin_detail(pool, "rise", since=T0, until=T0)
    with pytest.raises(InvalidRequest):
        await coins.coin_detail(pool, "rise", since=T0.replace(tzinfo=None))


async def test_statistics_per_model_and_overall(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await _fleet(conn)
    await drain(pool, CONFIG)
    report = await stats.statistics(pool)
    assert [(s.name, s.predictions, s.evaluated, s.pending) for s in report.models] == [
        ("up", 3, 2, 1),
        ("down", 1, 1, 0),
    ]
    assert report.models[0].by_tag == {"negative": 1, "positive": 0, "alert": 2}
    overall = report.overall
    assert (overall.model_id, overall.predictions, overall.evaluated, overall.pending) == (None, 4, 3, 1)
    assert overall.by_tag == {"negative": 1, "positive": 0, "alert": 3}
    assert overall.by_result_at_horizon == {"success": 3, "failed": 0} and overall.hit_rate_at_horizon == 1.0
    later = await stats.statistics(pool, since=T0 + timedelta(seconds=100), model="up")
    assert [(s.name, s.predictions) for s in later.models] == [("up", 1)] and later.overall.predictions == 1
    with pytest.raises(InvalidRequest):
        await stats.statistics(pool, since=T0.replace(tzinfo=None))


async def test_alert_pages_and_attempts(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        up, down = await _fleet(conn)
        made = [
            await _alert(conn, up if i % 2 else down, f"c{i}", i, "dead" if i < 3 else "pending")
            for i in range(6)
        ]
        await conn.execute(
            "INSERT INTO coinfleet_alert_attempts (alert_id, model_id, attempt, url, status_code, latency_ms)"
            " VALUES ($1, $2, 1, 'http://127.0.0.1:9/hook', 500, 3.5), ($1, $2, 2, 'http://127.0.0.1:9/hook',"
            " NULL, 5000)",
            made[1],
            up,
        )
    first = await alerts.list_alerts(pool, AlertQuery(limit=4))
    second = await alerts.list_alerts(pool, AlertQuery(limit=4, cursor=first.next_cursor))
    assert [a.id for a in first.items + second.items] == made[::-1] and second.next_cursor is None
    dead_of_up = await alerts.list_alerts(pool, AlertQuery(model="up", state="dead"))
    assert [a.id for a in dead_of_up.items] == [made[1]]
    detail = await alerts.alert_detail(pool, made[1])
    assert detail.alert.state == "dead" and [(a.attempt, a.status_code) for a in detail.attempts] == [
        (1, 500),
        (2, None),
    ]
    with pytest.raises(AlertNotFound):
        await alerts.alert_detail(pool, 10**9)


async def test_health(pool: asyncpg.Pool, db_dsn: str) -> None:
    fresh = await health.health(pool)
    assert (fresh.status, fresh.problems, fresh.database, fresh.models) == ("ok", [], True, {})
    async with pool.acquire() as conn:
        await _fleet(conn)
    degraded = await health.health(pool)
    assert degraded.status == "degraded" and degraded.models == {"inactive": 1, "quarantined": 1}
    assert degraded.quarantined == {"down": "runner crashed 5 times"}
    assert any("down" in problem for problem in degraded.problems)
    closed = await asyncpg.connect(db_dsn)
    await closed.close()
    down = await health.health(closed)
    assert (down.status, down.database, down.models) == ("down", False, {})


def _scans(node: dict[str, Any]) -> set[tuple[str, str]]:
    """(scan type, index or table) of every node of a plan that reads a relation."""
    here = (
        {(node["Node Type"], node.get("Index Name", node["Relation Name"]))}
        if "Relation Name" in node
        else set()
    )
    return here.union(*(_scans(child) for child in node.get("Plans", [])))


async def _plan(conn: asyncpg.Connection, name: str, *args: object) -> set[tuple[str, str]]:
    plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + query(name), *args))
    return _scans(plan[0]["Plan"])


async def test_hot_reads_use_indexes(pool: asyncpg.Pool) -> None:
    """With 40,000 predictions, a coin's page and a quiet model's page read through indexes, not the table
    (the model's walks its own rows, not the primary key past the other models')."""
    async with pool.acquire() as conn:
        up, _ = await _fleet(conn)
        for model_id in (up, up + 1):
            await insert_many_predictions(conn, model_id, UP10, start=T0)
        nothing = (None,) * 12  # no filter
        coin = await _plan(conn, "list_coin_predictions", FIRST_PAGE, None, *nothing, 51, "c7")
        quiet = await insert_model(conn, "quiet", UP10)
        await insert_prediction(conn, quiet, mint="rise", at=5, p0=100, target=UP10)
        await conn.execute("ANALYZE")
        model = await _plan(conn, "list_model_predictions", FIRST_PAGE, quiet, *nothing, 51, 200_000)
        every = await _plan(conn, "list_predictions", FIRST_PAGE, None, *nothing, 51, 200_000)
        floor = await _plan(conn, "prediction_scan_floor", FIRST_PAGE, quiet, 200_000)
        floor |= await _plan(conn, "prediction_scan_floor", FIRST_PAGE, None, 200_000)
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            coin_alerts = await _plan(conn, "coin_alerts", "c7", None, None, 10)
    assert ("Index Scan", "coinfleet_predictions_model_id_mint_metric_ts_key") in coin
    assert ("Index Scan", "coinfleet_predictions_model_id_idx") in model  # its rows, back from the cursor
    assert ("Index Scan", "coinfleet_predictions_pkey") in every  # walked backwards from the cursor
    assert {index for _, index in floor} >= {
        "coinfleet_predictions_pkey",
        "coinfleet_predictions_model_id_idx",
    }
    assert ("Seq Scan", "coinfleet_predictions") not in coin | model | every | floor
    assert any(index == "coinfleet_alerts_mint_idx" for _, index in coin_alerts)
