"""A lane's batch statement stores every column where it belongs, NULLs and NaN included."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from coinfleet.events.cursor import Cursor
from coinfleet.lanes.rules import CoinState, Tag
from coinfleet.lanes.store import load_states, store_batch
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.settings import ModelSettings
from support import LATE_TX
from support import T_PREDICTED as T0
from support import new_prediction as prediction


async def test_every_column_lands_in_place(pool: asyncpg.Pool, small_bundle: ModelBundle) -> None:
    async with pool.acquire() as conn:
        model = await import_bundle(
            conn, replace(small_bundle, name="stored"), settings=ModelSettings(), activate=True
        )
        batch = [
            prediction("a", 1.000001, 0.75, Tag.ALERT),
            prediction("b", 2, 0.25, Tag.NEGATIVE, phase=None, volume=math.nan, seq=2),
        ]
        states = {
            "a": CoinState(
                last_scan_ts=T0 + timedelta(microseconds=1), last_probability=0.75, last_tag=Tag.ALERT,
                stored_alert=3,
            ),
            "b": CoinState(
                last_scan_ts=T0 + timedelta(seconds=2), last_probability=0.25, last_tag=Tag.NEGATIVE,
                ignore_until=T0 + timedelta(hours=1), ignore_reason=Tag.NEGATIVE, stored_negative=1,
                stored_positive=2,
            ),
        }  # fmt: skip
        ids = await store_batch(conn, model, batch, states, Cursor(tx=LATE_TX, seq=2), want_ids=True)
        rows = await conn.fetch(
            "SELECT mint, metric_ts, probability, prediction, tag, phase_id, price_open, price_high,"
            " price_low, price_close, market_cap_close, volume_sol, event_tx::text::int8 AS tx, event_seq,"
            " evaluate_at - metric_ts AS horizon FROM coinfleet_predictions WHERE model_id = $1"
            " ORDER BY mint",
            model.id,
        )
        cursor = await conn.fetchrow(
            "SELECT tx::text::int8 AS tx, seq FROM coinfleet_cursors WHERE model_id = $1", model.id
        )
        assert await load_states(conn, model.id) == states
    a_ts = T0 + timedelta(seconds=1, microseconds=1)
    assert set(ids) == {("a", a_ts), ("b", T0 + timedelta(seconds=2))}
    a, b = (dict(r) for r in rows)
    horizon = timedelta(seconds=model.target.horizon_seconds)
    assert a == {
        "mint": "a", "metric_ts": a_ts, "probability": 0.75, "prediction": 1,
        "tag": "alert", "phase_id": 2, "price_open": 1.0, "price_high": 1.5, "price_low": 0.5,
        "price_close": 1.25, "market_cap_close": 30.0, "volume_sol": 4.0, "tx": LATE_TX, "event_seq": 1,
        "horizon": horizon,
    }  # fmt: skip
    assert b["prediction"] == 0 and b["phase_id"] is None and math.isnan(b["volume_sol"])
    assert (cursor["tx"], cursor["seq"]) == (LATE_TX, 2)


async def test_times_keep_every_microsecond(pool: asyncpg.Pool, small_bundle: ModelBundle) -> None:
    # times travel as microseconds since 1970, before it too
    rng = random.Random(4)
    start, span = datetime(1900, 1, 1, tzinfo=UTC), int(timedelta(days=400 * 365).total_seconds()) * 10**6
    times = [start + timedelta(microseconds=rng.randrange(span)) for _ in range(3000)]
    batch = [prediction(f"c{i}", 0, 0.5, Tag.POSITIVE, ts=t) for i, t in enumerate(times)]
    states = {
        f"c{i}": CoinState(
            last_scan_ts=t, last_probability=0.5, last_tag=Tag.POSITIVE,
            ignore_until=t + timedelta(microseconds=1), ignore_reason=Tag.POSITIVE,
        )
        for i, t in enumerate(times)
    }  # fmt: skip
    async with pool.acquire() as conn:
        model = await import_bundle(
            conn, replace(small_bundle, name="times"), settings=ModelSettings(), activate=True
        )
        await store_batch(conn, model, batch, states, Cursor(tx=LATE_TX, seq=1))
        stored = await conn.fetch(
            "SELECT mint, metric_ts FROM coinfleet_predictions WHERE model_id = $1", model.id
        )
        assert {r["mint"]: r["metric_ts"] for r in stored} == {p.event.mint: p.event.ts for p in batch}
        assert await load_states(conn, model.id) == states


async def test_a_scan_cache_left_behind_is_rebuilt_from_the_predictions(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    kept = {
        "a": CoinState(
            last_scan_ts=at(1), last_probability=0.75, last_tag=Tag.ALERT, ignore_until=at(3600),
            ignore_reason=Tag.ALERT, stored_alert=1,
        ),
        # scanned after its stored prediction (one the log limit held back)
        "b": CoinState(
            last_scan_ts=at(9), last_probability=0.2, last_tag=Tag.NEGATIVE, ignore_until=at(3600),
            ignore_reason=Tag.NEGATIVE, stored_positive=1,
        ),
    }  # fmt: skip
    without_cache = [
        prediction("a", 5, 0.3, Tag.NEGATIVE, seq=3),
        prediction("a", 6, 0.55, Tag.POSITIVE, seq=4),
        prediction("c", 7, 0.9, Tag.ALERT, seq=5),
    ]
    complete = "SELECT scan_cache_complete FROM coinfleet_cursors WHERE model_id = $1"
    async with pool.acquire() as conn:
        model = await import_bundle(
            conn, replace(small_bundle, name="rebuilt"), settings=ModelSettings(), activate=True
        )
        with_cache = [prediction("a", 1, 0.75, Tag.ALERT), prediction("b", 2, 0.6, Tag.POSITIVE, seq=2)]
        await store_batch(conn, model, with_cache, kept, Cursor(tx=LATE_TX, seq=2))
        assert await load_states(conn, model.id) == kept
        await store_batch(conn, model, without_cache, {}, Cursor(tx=LATE_TX, seq=5), keeps_scan_cache=False)
        assert not await conn.fetchval(complete, model.id)
        totals = await conn.fetchrow(
            "SELECT stored_predictions, last_prediction_at FROM coinfleet_cursors WHERE model_id = $1",
            model.id,
        )
        rebuilt = await load_states(conn, model.id)
        assert await conn.fetchval(complete, model.id)
    assert (totals["stored_predictions"], totals["last_prediction_at"]) == (5, at(7))
    assert rebuilt == {
        # a newer prediction is the last scan, with no ignore window (none was kept); counts recounted
        "a": CoinState(
            last_scan_ts=at(6), last_probability=0.55, last_tag=Tag.POSITIVE, stored_negative=1,
            stored_positive=1, stored_alert=1,
        ),
        "b": kept["b"],
        "c": CoinState(last_scan_ts=at(7), last_probability=0.9, last_tag=Tag.ALERT, stored_alert=1),
    }  # fmt: skip
