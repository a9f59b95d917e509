"""Reads that stay bounded at any number of stored predictions (issue 30 item 6), on real PostgreSQL: the
prediction log examines at most SCAN_LIMIT rows a page and says how far back it searched; statistics
read hourly rollups plus the live tail and equal the plain aggregate over every row."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from test_evaluation_support import T0, insert_model

from coinfleet.config import Settings
from coinfleet.db.sql import query
from coinfleet.evaluation import rollups
from coinfleet.evaluation.rounds import evaluation_loop, loop_config
from coinfleet.service import predictions, quality, stats
from coinfleet.service.schemas import PredictionQuery, Statistics
from coinfleet.targets import TargetSpec

UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)
SCAN = 50  #: the scan bound these tests run with (200,000 in production)


@pytest.fixture(autouse=True)
def small_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictions, "SCAN_LIMIT", SCAN)


async def _interleaved(conn: asyncpg.Connection, models: list[int], rows: int) -> None:
    """`rows` predictions, model after model in turn (ids interleaved), one second apart from T0;
    probability 0.2 (negative) except every 97th, 0.95 (alert)."""
    await conn.execute(
        "INSERT INTO coinfleet_predictions (model_id, model_version, mint, metric_ts, probability,"
        " prediction, tag, alert_threshold, target, evaluate_at, event_tx, event_seq)"
        " SELECT ($1::int[])[1 + i % cardinality($1::int[])], 1, 'c' || i,"
        " $2::timestamptz + i * interval '1 s',"
        " CASE WHEN i % 97 = 0 THEN 0.95 ELSE 0.2 END, (i % 97 = 0)::int,"
        " CASE WHEN i % 97 = 0 THEN 'alert' ELSE 'negative' END, 0.7, $3::jsonb,"
        " $2::timestamptz + i * interval '1 s' + interval '60 s', '1'::xid8, i"
        " FROM generate_series(0, $4 - 1) AS i",
        models,
        T0,
        json.dumps(UP10.to_dict()),
        rows,
    )


async def _search(pool: asyncpg.Pool, **filters: object) -> tuple[list[int], int]:
    """Every id the filters select, paging on ("search further back") to the end; and the pages read."""
    ids: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = await predictions.list_predictions(
            pool, PredictionQuery.model_validate(filters | {"cursor": cursor, "limit": 10})
        )
        pages += 1
        ids += [p.id for p in page.items]
        if page.searched_to_id is not None:
            assert page.next_cursor is not None and page.searched_to_time is not None
            assert all(p.id > page.searched_to_id for p in page.items)
        if page.next_cursor is None:
            return ids, pages
        cursor = page.next_cursor


async def _ids(conn: asyncpg.Connection, where: str, *args: object) -> list[int]:
    """The ids of the predictions `where` selects, newest first, read plainly."""
    rows = await conn.fetch(f"SELECT id FROM coinfleet_predictions WHERE {where} ORDER BY id DESC", *args)
    return [r["id"] for r in rows]


async def test_a_filter_matching_nothing_stops_at_the_bound(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        busy = await insert_model(conn, "busy", UP10)
        await _interleaved(conn, [busy], 500)
        top = await conn.fetchval("SELECT max(id) FROM coinfleet_predictions")
    page = await predictions.list_predictions(pool, PredictionQuery(ath_min=1e6))
    assert page.items == [] and page.next_cursor is not None
    assert page.searched_to_id == top - SCAN + 1  # examined exactly SCAN rows: the newest ones
    assert page.searched_to_time == T0 + timedelta(seconds=500 - SCAN)
    further = await predictions.list_predictions(pool, PredictionQuery(ath_min=1e6, cursor=page.next_cursor))
    assert further.items == [] and further.searched_to_id == top - 2 * SCAN + 1
    ids, pages = await _search(pool, ath_min=1e6)
    assert ids == [] and pages == 10  # 500 rows, 50 a page; the tenth reaches the oldest: no cursor


async def test_paging_on_finds_old_rows(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        busy = await insert_model(conn, "busy", UP10)
        await _interleaved(conn, [busy], 500)
        await conn.execute("UPDATE coinfleet_predictions SET probability = 0.99 WHERE event_seq IN (3, 7)")
        wanted = await _ids(conn, "probability >= 0.99")
        alerts = await _ids(conn, "tag = 'alert'")
        everything = await _ids(conn, "true")
    first = await predictions.list_predictions(pool, PredictionQuery(probability_min=0.99))
    assert first.items == [] and first.next_cursor is not None
    assert (await _search(pool, probability_min=0.99)) == (wanted, 10) and len(wanted) == 2
    assert (await _search(pool, tag="alert"))[0] == alerts and len(alerts) == 6
    assert (await _search(pool))[0] == everything  # full pages page on as before: every row once


async def test_a_model_filter_examines_that_models_rows_only(pool: asyncpg.Pool) -> None:
    """A quiet model among busy ones: its page walks (model_id, id), so the other models' rows do not
    count against the bound: its 100 rows, spread over 1,000, take two pages to search, not twenty."""
    async with pool.acquire() as conn:
        busy = await insert_model(conn, "busy", UP10)
        other = await insert_model(conn, "other", UP10)
        quiet = await insert_model(conn, "quiet", UP10)
        await _interleaved(conn, [quiet] + [busy, other] * 4 + [busy], 1000)
        quiet_alerts = await _ids(conn, f"model_id = {quiet} AND tag = 'alert'")
        quiet_rows = await _ids(conn, f"model_id = {quiet}")
    assert await _search(pool, model="quiet", ath_min=1e6) == ([], 2)
    assert await _search(pool, ath_min=1e6) == ([], 20)
    assert (await _search(pool, model="quiet", tag="alert"))[0] == quiet_alerts and len(quiet_alerts) == 2
    assert (await _search(pool, model="quiet"))[0] == quiet_rows and len(quiet_rows) == 100


@pytest.mark.parametrize("model", [None, "busy"])
async def test_a_time_range_far_back_starts_there(pool: asyncpg.Pool, model: str | None) -> None:
    """The first page of a range that ends far back starts at the newest row before its end, not at
    the newest row of all (450 newer rows would take nine empty pages)."""
    async with pool.acquire() as conn:
        busy = await insert_model(conn, "busy", UP10)
        await _interleaved(conn, [busy], 500)
        await conn.execute("ANALYZE coinfleet_predictions")
        until = T0 + timedelta(seconds=100)
        before_100 = await _ids(conn, "metric_ts < $1", until)
    page = await predictions.list_predictions(pool, PredictionQuery(model=model, until=until, limit=10))
    assert [p.id for p in page.items] == before_100[:10] and page.next_cursor is not None
    window = await predictions.list_predictions(
        pool, PredictionQuery(model=model, since=T0 + timedelta(seconds=20), until=T0 + timedelta(seconds=30))
    )
    assert [(p.metric_ts - T0).total_seconds() for p in window.items] == [float(s) for s in range(29, 19, -1)]
    assert window.next_cursor is None and window.searched_to_id is None
    assert (await _search(pool, model=model, until=until))[0] == before_100


async def test_a_slow_time_lookup_falls_back_to_the_newest(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the lookup of a range's end waits past its bound (here on a lock another transaction holds),
    the page starts from the newest prediction instead: a bounded page, none missed."""
    monkeypatch.setattr(predictions, "TIME_START_TIMEOUT_MS", 200)
    async with pool.acquire() as conn:
        busy = await insert_model(conn, "busy", UP10)
        await _interleaved(conn, [busy], 500)
        before_100 = await _ids(conn, "metric_ts < $1", T0 + timedelta(seconds=100))
    query_ = PredictionQuery(until=T0 + timedelta(seconds=100), limit=10)
    async with pool.acquire() as locker, locker.transaction():
        await locker.execute("LOCK TABLE coinfleet_predictions IN ACCESS EXCLUSIVE MODE")
        page = asyncio.create_task(predictions.list_predictions(pool, query_))
        async with asyncio.timeout(60):  # the lookup gave up; the page's own read waits for the lock
            while not await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '-- A page of predictions of every model%'"  # the page's own read
            ):
                await asyncio.sleep(0.05)
    first = await page
    assert first.items == [] and first.searched_to_id is not None  # the newest 50 lie after the range
    assert (await _search(pool, until=T0 + timedelta(seconds=100)))[0] == before_100


#: the statistics as one aggregate over every prediction (the query before rollups), to compare with
PLAIN_STATISTICS = """
    SELECT m.id, m.name, m.status,
           count(p.id) AS predictions,
           count(p.id) FILTER (WHERE p.tag = 'negative') AS negative,
           count(p.id) FILTER (WHERE p.tag = 'positive') AS positive,
           count(p.id) FILTER (WHERE p.tag = 'alert') AS alert,
           count(e.prediction_id) AS evaluated,
           count(p.id) FILTER (WHERE e.prediction_id IS NULL) AS pending,
           count(e.prediction_id) FILTER (WHERE e.status = 'ok') AS ok,
           count(e.prediction_id) FILTER (WHERE e.status = 'no_data') AS no_data,
           count(e.prediction_id) FILTER (WHERE e.status = 'invalid_price') AS invalid_price,
           count(e.prediction_id) FILTER (WHERE e.result_at_horizon = 'success') AS horizon_success,
           count(e.prediction_id) FILTER (WHERE e.result_at_horizon = 'failed') AS horizon_failed,
           count(e.prediction_id) FILTER (WHERE e.result_within = 'success') AS within_success,
           count(e.prediction_id) FILTER (WHERE e.result_within = 'failed') AS within_failed,
           count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.reached_at_horizon IS NOT NULL)
               AS alerts_judged_at_horizon,
           count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.reached_at_horizon)
               AS alerts_reached_at_horizon,
           count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.status = 'ok') AS alerts_judged_within,
           count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.status = 'ok' AND e.hit_within)
               AS alerts_hit_within,
           avg(g.gain) FILTER (WHERE p.tag = 'alert') AS alert_gain_avg_pct,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gain) FILTER (WHERE p.tag = 'alert')
               AS alert_gain_median_pct
    FROM coinfleet_models AS m
    LEFT JOIN coinfleet_predictions AS p
           ON p.model_id = m.id AND ($1::timestamptz IS NULL OR p.metric_ts >= $1::timestamptz)
    LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
    LEFT JOIN LATERAL (
        SELECT CASE WHEN p.target ->> 'direction' = 'down' THEN -e.change_at_horizon_pct
                    ELSE e.change_at_horizon_pct END AS gain
        WHERE e.status = 'ok' AND e.change_at_horizon_pct IS NOT NULL
          AND e.change_at_horizon_pct NOT IN ('Infinity'::float8, '-Infinity'::float8)
    ) AS g ON true
    WHERE m.status <> 'deleted' AND ($2::text IS NULL OR m.name = $2::text)
    GROUP BY GROUPING SETS ((m.id, m.name, m.status), ())
    ORDER BY m.id NULLS LAST
"""
DOWN5 = TargetSpec(kind="change", horizon_seconds=60, direction="down", change_percent=5.0)


async def _history(
    conn: asyncpg.Connection, model_id: int, target: TargetSpec, start: int, rows: int
) -> None:
    """`rows` predictions of one model, 37 s apart from T0 + `start` s (so across hours), with every tag;
    evaluations for all but every fifth of the newer half (those stay open), of every status and result,
    with changes from -40 % to +50 % (some repeated, some infinite)."""
    await conn.execute(
        "INSERT INTO coinfleet_predictions (model_id, model_version, mint, metric_ts, probability,"
        " prediction, tag, alert_threshold, target, evaluate_at, event_tx, event_seq)"
        " SELECT $1, 1, 'h' || i, $2::timestamptz + i * interval '37 s', (i % 10) / 10.0 + 0.05,"
        " (i % 10 >= 5)::int, CASE WHEN i % 10 >= 8 THEN 'alert' WHEN i % 10 >= 5 THEN 'positive'"
        " ELSE 'negative' END, 0.8, $3::jsonb, $2::timestamptz + i * interval '37 s' + interval '60 s',"
        " '1'::xid8, i FROM generate_series(0, $4 - 1) AS i",
        model_id, T0 + timedelta(seconds=start), json.dumps(target.to_dict()), rows,
    )  # fmt: skip
    await _judge(conn, model_id, f"p.event_seq % 5 <> 0 OR p.event_seq < {rows // 2}")


async def _judge(conn: asyncpg.Connection, model_id: int, which: str) -> None:
    """Outcomes for the model's open predictions that `which` selects (SQL over coinfleet_predictions p)."""
    await conn.execute(
        "INSERT INTO coinfleet_evaluations (prediction_id, model_id, status, change_at_horizon_pct,"
        " reached_at_horizon, hit_within, result_at_horizon, result_within, grace_seconds)"
        " SELECT p.id, p.model_id, s.status, s.change, s.change >= 10, s.change + 5 >= 10,"
        " CASE WHEN s.status <> 'ok' THEN 'not_applicable' WHEN (s.change >= 10) = (p.prediction = 1)"
        " THEN 'success' ELSE 'failed' END,"
        " CASE WHEN s.status <> 'ok' THEN 'not_applicable' WHEN (s.change + 5 >= 10) = (p.prediction = 1)"
        " THEN 'success' ELSE 'failed' END, 30"
        " FROM coinfleet_predictions AS p JOIN coinfleet_open_predictions AS o ON o.prediction_id = p.id"
        " CROSS JOIN LATERAL (SELECT CASE WHEN p.event_seq % 23 = 1 THEN 'no_data'"
        " WHEN p.event_seq % 29 = 1 THEN 'invalid_price' ELSE 'ok' END AS status,"
        " CASE WHEN p.event_seq % 23 = 1 OR p.event_seq % 29 = 1 THEN NULL"
        " WHEN p.event_seq % 31 = 2 THEN 'Infinity'::float8"
        " ELSE ((p.event_seq * 7) % 91 - 40)::float8 + (p.event_seq % 3) / 7.0 END AS change) AS s"
        f" WHERE p.model_id = $1 AND ({which})",
        model_id,
    )
    await conn.execute(
        "DELETE FROM coinfleet_open_predictions AS o USING coinfleet_evaluations AS e"
        " WHERE e.prediction_id = o.prediction_id"
    )


def _figures(s: Statistics) -> dict[str, Any]:
    """Everything but the median (compared within its bound)."""
    return s.model_dump(exclude={"alert_gain_median_pct", "alert_gain_avg_pct"}) | {
        "alert_gain_avg_pct": None if s.alert_gain_avg_pct is None else pytest.approx(s.alert_gain_avg_pct)
    }


async def _same_as_plain(pool: asyncpg.Pool, since: datetime | None, model: str | None) -> None:
    report = await stats.statistics(pool, since=since, model=model)
    rows = await pool.fetch(PLAIN_STATISTICS, since, model)
    plain = {r["id"]: r for r in rows}
    for got in [*report.models, report.overall]:
        row = plain[got.model_id]
        assert got.predictions == row["predictions"] and got.pending == row["pending"]
        assert got.by_tag == {t: row[t] for t in ("negative", "positive", "alert")}
        assert got.by_status == {t: row[t] for t in ("ok", "no_data", "invalid_price")}
        assert got.by_result_at_horizon == {
            "success": row["horizon_success"],
            "failed": row["horizon_failed"],
        }
        assert got.by_result_within == {"success": row["within_success"], "failed": row["within_failed"]}
        assert got.evaluated == row["evaluated"]
        assert (got.alert_precision_at_horizon, got.alert_precision_within) == (
            pytest.approx(row["alerts_reached_at_horizon"] / row["alerts_judged_at_horizon"])
            if row["alerts_judged_at_horizon"] else None,
            pytest.approx(row["alerts_hit_within"] / row["alerts_judged_within"])
            if row["alerts_judged_within"] else None,
        )  # fmt: skip
        if row["alert_gain_avg_pct"] is None:
            assert got.alert_gain_avg_pct is None and got.alert_gain_median_pct is None
        else:
            assert got.alert_gain_avg_pct == pytest.approx(row["alert_gain_avg_pct"], rel=1e-9)
            assert got.alert_gain_median_pct == pytest.approx(row["alert_gain_median_pct"], abs=0.1)


async def _calibration_same_as_plain(pool: asyncpg.Pool, since: datetime | None, model: str | None) -> None:
    """The calibration sums from the rollups equal those summed from every judged prediction."""
    rolled = await pool.fetch(query("calibration_sums_rolled"), since, model)
    plain = await pool.fetch(query("calibration_sums"), since, model, quality.ROLLED_BUCKETS)
    assert [(r["model_id"], r["bucket"], r["count"]) for r in rolled] == [
        (r["model_id"], r["bucket"], r["count"]) for r in plain
    ]
    for got, want in zip(rolled, plain, strict=True):
        for name in ("sum_probability", "sum_label", "sum_squared_error"):
            assert got[name] == pytest.approx(want[name], rel=1e-9)
    assert await quality.calibration(pool, since=since, model=model)  # the service reads the rollup


async def _all_windows_same_as_plain(pool: asyncpg.Pool) -> None:
    for since in (None, T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=17, seconds=3)):
        for model in (None, "up", "down"):
            await _same_as_plain(pool, since, model)
            await _calibration_same_as_plain(pool, since, model)


async def _roll_all(pool: asyncpg.Pool, step: int) -> int:
    """Advance every rollup until nothing more is added (no settling wait beyond the transactions that
    run on the server: another database's long transaction holds the candidates back, so wait for it)."""
    added = idle = 0
    async with asyncio.timeout(300):
        while idle < 2:  # the first call after new rows only notes the newest id
            now = await rollups.advance(pool, step=step, settle_seconds=0)
            added += now
            settled = await pool.fetchval(
                "SELECT coalesce(bool_and(candidate_xmax <= pg_snapshot_xmin(pg_current_snapshot())), true)"
                " FROM coinfleet_stats_rolled"
            )
            idle = 0 if now or not settled else idle + 1
            if not settled:
                await asyncio.sleep(0.2)
    return added


async def test_rollup_statistics_equal_the_plain_aggregate(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        up = await insert_model(conn, "up", UP10)
        down = await insert_model(conn, "down", DOWN5)
        await conn.execute(  # calibrated against "reached at the horizon end"; "up" against "hit within"
            'UPDATE coinfleet_models SET training_metrics = \'{"label_mode": "at_horizon"}\' WHERE id = $1',
            down,
        )
        await _history(conn, up, UP10, 0, 600)  # ~6 hours
        await _history(conn, down, DOWN5, 900, 300)
    await _all_windows_same_as_plain(pool)  # nothing rolled up yet: all from rows
    assert await _roll_all(pool, step=97) > 0
    async with pool.acquire() as conn:
        rolled = {
            r["model_id"]: r["through_id"] for r in await conn.fetch("SELECT * FROM coinfleet_stats_rolled")
        }
        first_open = {
            m: await conn.fetchval(
                "SELECT min(prediction_id) FROM coinfleet_open_predictions WHERE model_id = $1", m
            )
            for m in (up, down)
        }
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_stats_gain_bins") > 0
    assert rolled == {up: first_open[up] - 1, down: first_open[down] - 1}  # up to the oldest still open
    await _all_windows_same_as_plain(pool)
    async with pool.acquire() as conn:  # the open ones are judged, more predictions come
        await _judge(conn, up, "true")
        await _judge(conn, down, "p.event_seq < 200")
        await _history(conn, up, UP10, 600 * 37, 50)
    await _all_windows_same_as_plain(pool)  # judged since the rollup: from rows until it moves on
    await _roll_all(pool, step=1000)
    async with pool.acquire() as conn:
        through = await conn.fetchval("SELECT through_id FROM coinfleet_stats_rolled WHERE model_id = $1", up)
        assert through == await conn.fetchval(
            "SELECT min(prediction_id) - 1 FROM coinfleet_open_predictions WHERE model_id = $1", up
        )
        assert through > rolled[up]
    await _all_windows_same_as_plain(pool)


async def test_a_deleted_model_takes_its_rollup_along(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        up = await insert_model(conn, "up", UP10)
        await _history(conn, up, UP10, 0, 100)
    await _roll_all(pool, step=1000)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_stats_rollup") > 0
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_stats_calibration") > 0
        await conn.execute(query("delete_model_predictions"), up)
        tables = ("rollup", "gain_bins", "calibration", "rolled")
        for table in (f"coinfleet_stats_{name}" for name in tables):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_the_evaluation_loop_keeps_the_rollups(pool: asyncpg.Pool) -> None:
    """The rollups move beside the evaluation rounds: a running evaluation loop rolls judged history
    up to the oldest open prediction, and the statistics still equal the plain aggregate."""
    async with pool.acquire() as conn:
        up = await insert_model(conn, "up", UP10)
        down = await insert_model(conn, "down", DOWN5)
        await _history(conn, up, UP10, 0, 300)
        await _history(conn, down, DOWN5, 900, 200)
        # the open ones are due long after the feed's clock (no metric rows): they stay open
        await conn.execute("UPDATE coinfleet_open_predictions SET evaluate_at = 'infinity'")
        first_open = {
            r["model_id"]: r["first"]
            for r in await conn.fetch(
                "SELECT model_id, min(prediction_id) AS first FROM coinfleet_open_predictions GROUP BY 1"
            )
        }
    stop = asyncio.Event()
    loop = asyncio.create_task(
        evaluation_loop(pool, loop_config(Settings(evaluation_interval_seconds=0.2)), stop)
    )
    try:
        async with asyncio.timeout(300):  # a settle wait and a few intervals; longer on a busy server
            while {
                r["model_id"]: r["through_id"]
                for r in await pool.fetch("SELECT * FROM coinfleet_stats_rolled")
            } != {m: first - 1 for m, first in first_open.items()}:
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await loop
    await _all_windows_same_as_plain(pool)
