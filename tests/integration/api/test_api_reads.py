"""Predictions, coins, statistics, lag, status and manual scoring over real HTTP, on real scored data."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from api_support import RunningApi, running_api
from coinfleet.config import Settings
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from support import activate, market_rows

SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300, runner="inline")


async def score_market(pool: asyncpg.Pool, dsn: str, bundle: ModelBundle) -> list[MetricRow]:
    """Two active models score a simulated market; return its rows."""
    for name in ("alpha", "beta"):
        await activate(pool, bundle, name, min_scan_interval_seconds=0)
    rows = market_rows(coins=8, seconds=300)
    supervisor = Supervisor(pool=pool, dsn=dsn, settings=SETTINGS)
    task = asyncio.create_task(supervisor.run())
    try:
        async with pool.acquire() as conn:
            await insert_metrics(conn, rows)
        async with asyncio.timeout(180):  # a loaded machine; it takes seconds when idle
            while len(supervisor.lanes) < 2 or any(
                lane.stats.events < len(rows) for lane in supervisor.lanes
            ):
                await asyncio.sleep(0.05)
    finally:
        supervisor.stop()
        await task
    return rows


@pytest.fixture
async def scored(pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle) -> list[MetricRow]:
    return await score_market(pool, db_dsn, small_bundle)


async def pages(api: RunningApi, **params: str | int) -> list[int]:
    """Every prediction id through keyset pages."""
    ids: list[int] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = (await api.anonymous.get("/api/predictions", params=query)).json()
        ids += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_predictions_filter_and_page(pool: asyncpg.Pool, db_dsn: str, scored: list[MetricRow]) -> None:
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM coinfleet_predictions p"
            " JOIN coinfleet_models m ON m.id = p.model_id WHERE m.name = 'alpha'"
        )
    async with running_api(db_dsn) as api:
        ids = await pages(api, model="alpha", limit=37)
        assert len(ids) == len(set(ids)) == stored
        assert ids == sorted(ids, reverse=True)
        high = (
            await api.anonymous.get("/api/predictions", params={"probability_min": 0.5, "limit": 500})
        ).json()
        assert all(p["probability"] >= 0.5 for p in high["items"])
        waiting = (await api.anonymous.get("/api/predictions", params={"state": "waiting"})).json()
        assert all(p["state"] == "waiting" for p in waiting["items"])
        cases: list[tuple[dict[str, str | float], int]] = [
            ({"limit": 501}, 422),
            ({"probability_min": 0.9, "probability_max": 0.1}, 422),
            ({"cursor": "garbage"}, 422),
            ({"tag": "maybe"}, 422),
            ({"colour": "red"}, 422),
            ({"since": "2026-01-01T00:00:00"}, 422),
            ({"model": "nope"}, 404),
        ]
        for params, status in cases:
            answer = await api.anonymous.get("/api/predictions", params=params)
            assert answer.status_code == status, (params, answer.text)
            assert answer.json()["message"]


async def test_coin_statistics_lag_and_status(db_dsn: str, scored: list[MetricRow]) -> None:
    mint = scored[-1].mint
    async with running_api(db_dsn) as api:
        coin = (await api.anonymous.get(f"/api/coins/{mint}")).json()
        assert coin["rows"] and all(r["mint"] == mint for r in coin["rows"])
        assert {m["model_name"] for m in coin["models"]} == {"alpha", "beta"}
        empty = await api.anonymous.get(
            f"/api/coins/{mint}", params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
        )
        assert empty.status_code == 422
        report = (await api.anonymous.get("/api/statistics", params={"since": "all"})).json()
        assert {m["name"] for m in report["models"]} == {"alpha", "beta"}
        assert report["overall"]["predictions"] == sum(m["predictions"] for m in report["models"])
        assert (
            await api.anonymous.get("/api/statistics", params={"since": "yesterday-ish"})
        ).status_code == 422
        lag = (await api.anonymous.get("/api/lag")).json()
        assert {lane["name"] for lane in lag["lanes"]} == {"alpha", "beta"}
        assert (await api.anonymous.get("/api/status")).json()["database"] is True


async def test_manual_scoring_stores_nothing(
    pool: asyncpg.Pool, db_dsn: str, scored: list[MetricRow]
) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM coinfleet_predictions")
    mint = scored[-1].mint
    async with running_api(db_dsn) as api:
        now = (await api.anonymous.post("/api/score", json={"mint": mint})).json()
        assert [s["model"] for s in now["scores"]] == ["alpha", "beta"]
        assert all(0 <= s["probability"] <= 1 for s in now["scores"])
        first = min(r.timestamp for r in scored if r.mint == mint)
        past = await api.anonymous.post(
            "/api/score", json={"mint": mint, "at": first.isoformat(), "models": ["beta"]}
        )
        assert past.json()["metric_ts"] == first.isoformat().replace("+00:00", "Z")
        assert [s["model"] for s in past.json()["scores"]] == ["beta"]
        assert (await api.anonymous.post("/api/score", json={"mint": "unknown-coin"})).status_code == 404
        assert (
            await api.anonymous.post("/api/score", json={"mint": mint, "models": ["nope"]})
        ).status_code == 404
        naive = await api.anonymous.post("/api/score", json={"mint": mint, "at": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
        assert (await api.anonymous.post("/api/score", json={})).status_code == 422
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == before


async def test_manual_scoring_now_is_never_a_row_from_the_future(
    pool: asyncpg.Pool, db_dsn: str, scored: list[MetricRow]
) -> None:
    mint = scored[-1].mint
    newest = max(r.timestamp for r in scored if r.mint == mint)
    ahead = replace(scored[-1], timestamp=datetime.now(UTC) + timedelta(days=1))
    async with pool.acquire() as conn:
        await insert_metrics(conn, [ahead])
        await conn.execute(  # timestamptz takes 'infinity', which no MetricRow can carry
            """INSERT INTO coin_metrics (mint, "timestamp", phase_id_at_time, price_open, price_high,
                   price_low, price_close, market_cap_close, volume_sol)
               VALUES ($1, 'infinity', 1, 1, 1, 1, 1, 1, 1)""",
            mint,
        )
    async with running_api(db_dsn) as api:
        now = await api.anonymous.post("/api/score", json={"mint": mint})
        assert now.status_code == 200, now.text
        assert now.json()["metric_ts"] == newest.isoformat().replace("+00:00", "Z")
        later = (ahead.timestamp + timedelta(days=1)).isoformat()
        asked_ahead = await api.anonymous.post("/api/score", json={"mint": mint, "at": later})
        assert asked_ahead.json()["metric_ts"] == now.json()["metric_ts"]
