"""A model's statistics charts: drawn from a bounded sample of its newest predictions, read by index."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from test_evaluation_support import CONFIG, T0, Bar, insert_bars, insert_model, insert_prediction

from coinfleet.db.sql import query
from coinfleet.evaluation.rounds import drain
from coinfleet.service import model_charts
from coinfleet.targets import TargetSpec
from support import insert_many_predictions

UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)


async def test_charts_of_judged_predictions(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        model = await insert_model(conn, "up", UP10)
        await insert_bars(conn, "rise", [Bar(at=60, close=120)])  # +20 %: the target is reached
        for flat in ("flat", "flat2"):
            await insert_bars(conn, flat, [Bar(at=60, close=101)])  # +1 %: not reached
        await insert_prediction(conn, model, mint="rise", at=0, p0=100, target=UP10)  # p 0.9 alert: success
        await insert_prediction(conn, model, mint="flat", at=0, p0=100, target=UP10)  # p 0.9 alert: failed
        await insert_prediction(conn, model, mint="flat2", at=0, p0=100, target=UP10, prediction=0)  # 0.2
        await insert_prediction(conn, model, mint="rise", at=50, p0=100, target=UP10)  # still waiting
    await drain(pool, CONFIG)
    charts = await model_charts.model_charts(pool, "up")
    assert (charts.sample, charts.sample_capped) == (4, False)
    assert charts.histogram.counts["alert"][18] == 3 and charts.histogram.counts["negative"][4] == 1
    judged = [r for r in charts.hit_rates.at_horizon if r is not None]
    assert judged[0] == pytest.approx(2 / 3), "two of the three judged at T0 succeeded"
    later = await model_charts.model_charts(pool, "up", since=T0 + timedelta(seconds=10))
    assert later.sample == 1


async def test_the_sample_is_bounded(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_charts, "CHART_SAMPLE", 5)
    async with pool.acquire() as conn:
        model = await insert_model(conn, "busy", UP10)
        for i in range(8):
            await insert_prediction(conn, model, mint=f"c{i}", at=i, p0=100, target=UP10)
    charts = await model_charts.model_charts(pool, "busy")
    assert (charts.sample, charts.sample_capped) == (5, True)


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


async def test_the_chart_read_is_a_limited_index_walk(pool: asyncpg.Pool) -> None:
    """With 40,000 predictions of two models, the read stops at its limit and never scans the table."""
    async with pool.acquire() as conn:
        for name in ("a", "b"):
            model = await insert_model(conn, name, UP10)
            await insert_many_predictions(conn, model, UP10, start=T0)
        await conn.execute("ANALYZE")
        explain = "EXPLAIN (FORMAT JSON) " + query("chart_predictions")
        plan = json.loads(await conn.fetchval(explain, model, None, 501))
    top = plan[0]["Plan"]
    assert top["Node Type"] == "Limit"
    scans = {(n["Node Type"], n.get("Relation Name")) for n in _nodes(top)}
    assert ("Seq Scan", "coinfleet_predictions") not in scans, scans
