"""Coverage, the as-of rule beside the former one, calibration and drift, read from real tables through
the service layer (what the CLI, API and UI show)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import numpy as np
import pytest
from prometheus_client import REGISTRY
from test_evaluation_support import CONFIG, T0, Bar, insert_bars, insert_model, insert_prediction

from coinfleet.config import Settings
from coinfleet.db.database import Database
from coinfleet.evaluation.calibration import calibration
from coinfleet.evaluation.drift import FeatureReference, psi, references_of
from coinfleet.evaluation.rounds import drain
from coinfleet.evaluation.telemetry import DRIFTED_FEATURES
from coinfleet.features.spec import compute_matrix
from coinfleet.features.window import WINDOW_ROWS, windows_from_history
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.serve import watch_drift
from coinfleet.metrics import MetricRow
from coinfleet.models.drift import model_drift
from coinfleet.service.quality import calibration as model_calibration
from coinfleet.service.quality import coverage, drift, rule_comparison
from coinfleet.targets import TargetSpec
from support import market_rows

UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)


async def _rug_and_rise(pool: asyncpg.Pool) -> None:
    """One alert on a coin that rugs and goes quiet, one on a coin that rises; another coin keeps the
    feed alive until long after both horizons."""
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "up", UP10)
        await insert_bars(conn, "rug", [Bar(at=0, close=100), Bar(at=20, close=4, low=3)])
        await insert_bars(conn, "rise", [Bar(at=0, close=100), Bar(at=30, close=105), Bar(at=61, close=120)])
        await insert_bars(conn, "alive", [Bar(at=at, close=1.0) for at in (0, 65, 120, 200)])
        for mint in ("rug", "rise"):
            await insert_prediction(conn, model_id, mint=mint, at=0, p0=100.0, target=UP10)
        await insert_prediction(conn, model_id, mint="rise", at=130, p0=120.0, target=UP10)
    await drain(pool, CONFIG)


async def test_coverage_counts_judged_pending_and_running(pool: asyncpg.Pool) -> None:
    await _rug_and_rise(pool)
    async with pool.acquire() as conn:
        (at_end,) = await coverage(conn, T0 + timedelta(seconds=200))
        (early,) = await coverage(conn, T0 + timedelta(seconds=100))
    assert (at_end.ended, at_end.judged, at_end.no_data, at_end.pending, at_end.running) == (3, 2, 0, 1, 0)
    assert at_end.judged_share == pytest.approx(2 / 3)
    assert (early.ended, early.judged, early.running) == (2, 2, 1)


async def test_the_former_rule_drops_the_rugged_coin_and_looks_better(pool: asyncpg.Pool) -> None:
    await _rug_and_rise(pool)
    async with pool.acquire() as conn:
        (rules,) = await rule_comparison(conn)
    # as of the end: the rug failed (-96 %), the riser... reached +5 % by 60 s, failed at the end too
    assert (rules.judged, rules.judged_former) == (2, 1)
    assert rules.alert_precision_at_horizon == 0.0
    assert rules.alert_precision_at_horizon_former == 1.0  # the riser's first row after the end: +20 %
    assert (rules.hit_rate_within, rules.hit_rate_within_former) == (0.0, 0.0)


async def test_live_calibration_equals_the_pure_definition(pool: asyncpg.Pool) -> None:
    probabilities = [0.05, 0.15, 0.42, 0.55, 0.61, 0.77, 0.93, 0.999, 1.0, 0.3]
    async with pool.acquire() as conn:
        model_id = await insert_model(conn, "cal", UP10)
        await insert_bars(conn, "alive", [Bar(at=at, close=1.0) for at in range(0, 400, 20)])
        for i, p in enumerate(probabilities):
            rises = i % 3 == 0
            await insert_bars(conn, f"c{i}", [Bar(at=0, close=100), Bar(at=30, close=115 if rises else 101)])
            pid = await insert_prediction(conn, model_id, mint=f"c{i}", at=0, p0=100.0, target=UP10)
            await conn.execute("UPDATE coinfleet_predictions SET probability = $1 WHERE id = $2", p, pid)
    await drain(pool, CONFIG)
    async with pool.acquire() as conn:
        (live,) = await model_calibration(conn)
        labels = [
            int(r["hit_within"])
            for r in await conn.fetch("SELECT hit_within FROM coinfleet_evaluations ORDER BY prediction_id")
        ]
        none = await model_calibration(conn, since=T0 + timedelta(seconds=1))
    assert labels == [int(i % 3 == 0) for i in range(len(probabilities))]
    expected = calibration(probabilities, labels)
    assert (live.model_id, live.name) == (model_id, "cal")
    assert live.count == expected.count == len(probabilities)
    assert live.brier == pytest.approx(expected.brier)
    assert [(r.lower, r.count) for r in live.table] == [(r.lower, r.count) for r in expected.table]
    assert [r.hit_rate for r in live.table] == pytest.approx([r.hit_rate for r in expected.table])
    assert none == []
    assert live.validation is None, "a model without a stored validation calibration has none"


async def test_live_calibration_comes_with_the_validation_split_training_stored(pool: asyncpg.Pool) -> None:
    trained = calibration([0.1, 0.2, 0.8, 0.9], [0, 1, 1, 1])
    async with pool.acquire() as conn:
        await insert_bars(conn, "alive", [Bar(at=at, close=1.0) for at in range(0, 200, 20)])
        await insert_bars(conn, "coin", [Bar(at=0, close=100), Bar(at=30, close=115)])
        for name, metrics in (("trained", {"calibration": trained.as_dict()}), ("odd", {"calibration": 3})):
            model_id = await insert_model(conn, name, UP10)
            await conn.execute(
                "UPDATE coinfleet_models SET training_metrics = $1::jsonb WHERE id = $2",
                json.dumps(metrics),
                model_id,
            )
            await insert_prediction(conn, model_id, mint="coin", at=0, p0=100.0, target=UP10)
    await drain(pool, CONFIG)
    async with pool.acquire() as conn:
        reports = {r.name: r for r in await model_calibration(conn)}
    validation = reports["trained"].validation
    assert validation is not None
    assert validation.count == 4 and validation.brier == pytest.approx(trained.brier)
    assert [(r.lower, r.count, r.hit_rate) for r in validation.table] == [
        (r.lower, r.count, r.hit_rate) for r in trained.table
    ]
    assert reports["odd"].validation is None, "training metrics of another shape are no validation figures"
    assert reports["odd"].count == reports["trained"].count == 1


def _scored(rows: list[MetricRow], every: int) -> list[MetricRow]:
    return sorted(rows, key=lambda r: (r.timestamp, r.mint))[WINDOW_ROWS::every]


def _features_at(rows: list[MetricRow], scored: list[MetricRow], names: list[str]) -> np.ndarray:
    """The features at the scored rows, computed the way training does (whole coin histories)."""
    wanted = {(r.mint, r.timestamp.timestamp()) for r in scored}
    windows = []
    for mint in sorted({r.mint for r in rows}):
        coin = sorted((r for r in rows if r.mint == mint), key=lambda r: r.timestamp)
        windows += [w for w in windows_from_history(coin, WINDOW_ROWS) if (mint, w.t[-1]) in wanted]
    return compute_matrix(windows, names)


NAMES = ["price_change_5", "volume_sum_5", "rows_seen"]


async def _drift_models(pool: asyncpg.Pool) -> tuple[np.ndarray, dict[str, Any]]:
    """Three models scored on the same rows: one trained on them, one on far larger volumes, one without a
    stored training distribution; (the scored rows' features, the shifted reference)."""
    rows = market_rows(coins=20, seconds=900, seed=4)
    scored = _scored(rows, every=7)
    x = _features_at(rows, scored, NAMES)
    same = {name: ref.to_dict() for name, ref in references_of(x, NAMES).items()}
    volume = FeatureReference.from_dict(same["volume_sum_5"])
    higher = replace(volume, edges=tuple(e + 1000.0 for e in volume.edges))
    shifted = {**same, "volume_sum_5": higher.to_dict()}
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
        for name, reference in (("same", same), ("shifted", shifted), ("untrained", None)):
            model_id = await insert_model(conn, name, UP10)
            metrics = {} if reference is None else {"drift_reference": reference}
            await conn.execute(
                "UPDATE coinfleet_models SET features = $1, training_metrics = $2::jsonb, status = 'active'"
                " WHERE id = $3",
                NAMES,
                json.dumps(metrics),
                model_id,
            )
            for r in scored:
                at = (r.timestamp - T0).total_seconds()
                await insert_prediction(conn, model_id, mint=r.mint, at=at, p0=r.price_close, target=UP10)
    return x, shifted


async def test_drift_recomputes_serving_features_and_flags_a_shifted_feature(pool: asyncpg.Pool) -> None:
    x, shifted = await _drift_models(pool)
    scored = len(x)
    async with pool.acquire() as conn:
        found = {d.name: d for d in await drift(conn, hours=24)}
        newest = await model_drift(conn, model="same", hours=24, sample=40)
    assert found["same"].rows == scored and found["same"].drifted == []
    assert all(f.psi == pytest.approx(0.0, abs=1e-12) for f in found["same"].features)
    assert found["shifted"].drifted == ["volume_sum_5"]
    expected = psi(FeatureReference.from_dict(shifted["volume_sum_5"]), x[:, 1])
    assert found["shifted"].features[0].psi == pytest.approx(expected)
    assert found["untrained"].note is not None and found["untrained"].features == []
    assert newest[0].rows == 40
    gauge = REGISTRY.get_sample_value
    assert gauge("coinfleet_model_feature_psi", {"model": "shifted", "feature": "volume_sum_5"}) == expected
    assert gauge("coinfleet_model_drifted_features", {"model": "shifted"}) == 1.0


async def test_serve_refreshes_the_drift_gauges(pool: asyncpg.Pool, db_dsn: str) -> None:
    await _drift_models(pool)
    DRIFTED_FEATURES.labels(model="shifted").set(-1)
    stop = asyncio.Event()
    settings = Settings(database_url=db_dsn, drift_refresh_seconds=3600)
    watch = asyncio.create_task(watch_drift(Database(pool=pool, dsn=db_dsn), settings, stop))
    async with asyncio.timeout(60):
        while REGISTRY.get_sample_value("coinfleet_model_drifted_features", {"model": "shifted"}) == -1:
            await asyncio.sleep(0.05)
    stop.set()
    await watch
    assert REGISTRY.get_sample_value("coinfleet_model_drifted_features", {"model": "shifted"}) == 1.0
