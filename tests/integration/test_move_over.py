"""`migrate-from-pump-server` on a database with the predecessor's tables, rows and joblib models.

The predecessor's database is another database on the test server, built from its schema; its models
are scikit-learn RandomForest and XGBoost classifiers pickled with joblib, as it stored them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import joblib
import numpy as np
import pytest

from coinfleet.config import Settings
from coinfleet.db.database import with_database
from coinfleet.lanes.rules import Tag
from coinfleet.lanes.store import load_states
from coinfleet.models import registry
from coinfleet.service.predecessor import MoveOverOptions, MoveOverReport, move_over

pytestmark = pytest.mark.slow
SCHEMA = Path(__file__).parent / "data" / "predecessor_schema.sql"
#: its models name coin_metrics columns as they are, and derived features
FEATURES = ["price_close", "volume_sol", "num_buys", "price_change_5", "buy_pressure_avg_5"]
T0 = datetime(2025, 6, 6, 12, 0, tzinfo=UTC)
SETTINGS = Settings(model_check_timeout_seconds=120, model_check_memory_mb=1024)


@pytest.fixture
async def predecessor_dsn(server_dsn: str) -> AsyncIterator[str]:
    """An empty database with the predecessor's tables."""
    name = f"pump_server_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = with_database(server_dsn, name)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA.read_text())
        finally:
            await conn.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _pickled_models(folder: Path) -> dict[str, Path]:
    from sklearn.ensemble import RandomForestClassifier
    from xgboost import XGBClassifier

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, len(FEATURES)))
    y = (x[:, 0] + rng.normal(0, 0.7, 300) > 0).astype(np.int64)
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0, n_jobs=1).fit(x, y)
    boosted = XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(x, y)
    paths = {"rf": folder / "model_101.pkl", "xgb": folder / "model_102.pkl", "rsi": folder / "model_103.pkl"}
    joblib.dump(forest, paths["rf"])
    joblib.dump(boosted, paths["xgb"])
    joblib.dump(forest, paths["rsi"])
    return paths


MODELS = """
INSERT INTO prediction_active_models
    (id, model_id, model_name, custom_name, model_type, target_variable, future_minutes,
     price_change_percent, target_direction, features, phases, local_model_path, is_active,
     training_accuracy, roc_auc, confusion_matrix, alert_threshold, n8n_webhook_url, n8n_send_mode,
     coin_filter_mode, coin_whitelist, ignore_bad_seconds, ignore_positive_seconds, ignore_alert_seconds,
     min_scan_interval_seconds, max_log_entries_per_coin_negative, max_log_entries_per_coin_positive,
     max_log_entries_per_coin_alert, send_ignored_to_n8n, n8n_enabled)
VALUES
    (11, 101, 'RF_20250601', 'rf pumper', 'random_forest', 'price_close', 10, 5.0, 'up', $1, '[1, 2]', $2,
     true, 0.7123, 0.6600, '{"tp": 10, "fp": 4}', 0.65, 'https://n8n.example.com/webhook/rf',
     '["alerts_only", "negative_only"]', 'whitelist', '["MintA", "MintB"]', 30, 60, 120, 20, 5, 6, 7,
     true, NULL),
    (12, 102, 'XGB_20250602', NULL, 'xgboost', 'price_close', 5, 3.0, 'down', $1, NULL, $3,
     false, NULL, NULL, NULL, 0.8, NULL, '["all"]', 'all', NULL, 0, 0, 0, 20, 0, 0, 0, false, false),
    (13, 103, 'RAW_COLUMNS', NULL, 'random_forest', 'price_close', 10, 5.0, 'up', $4, NULL, $5,
     true, NULL, NULL, NULL, 0.7, NULL, '["all"]', 'all', NULL, 0, 0, 0, 20, 0, 0, 0, false, NULL),
    (14, 104, 'GONE', NULL, 'random_forest', 'price_close', 10, 5.0, 'up', $1, NULL, '/nowhere/model_104.pkl',
     true, NULL, NULL, NULL, 0.7, NULL, '["all"]', 'all', NULL, 0, 0, 0, 20, 0, 0, 0, false, NULL)
"""

PREDICTIONS = """
INSERT INTO model_predictions
    (coin_id, model_id, active_model_id, prediction, probability, tag, status, prediction_timestamp,
     evaluation_timestamp, evaluated_at, price_close_at_prediction, market_cap_at_prediction,
     volume_at_prediction, phase_id_at_prediction, price_close_at_evaluation, actual_price_change_pct,
     evaluation_result, ath_highest_pct, ath_lowest_pct, ath_highest_timestamp, ath_lowest_timestamp)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[], $5::numeric[], $6::text[], $7::text[],
    $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::numeric[], $12::numeric[], $13::numeric[],
    $14::int[], $15::numeric[], $16::numeric[], $17::text[], $18::numeric[], $19::numeric[],
    $20::timestamptz[], $21::timestamptz[])
"""


#: the predecessor's scan cache, in wall time: windows running (MintB after its alert, MintE never
#: stored), one ended (MintA), one of a model not brought over (13)
SCAN_CACHE = """
INSERT INTO coin_scan_cache
    (coin_id, active_model_id, last_scan_at, last_prediction, last_probability, was_alert, ignore_until,
     ignore_reason)
VALUES
    ('MintA', 11, now() - interval '2 hours', 1, 0.55, false, now() - interval '1 hour', 'positive'),
    ('MintB', 11, now() - interval '1 minute', 1, 0.70, true, now() + interval '119 seconds', 'alert'),
    ('MintE', 11, now() - interval '10 seconds', 0, 0.05, false, now() + interval '20 seconds', 'bad'),
    ('MintC', 11, now() - interval '3 hours', 0, 0.10, false, NULL, NULL),
    ('MintB', 13, now() - interval '1 minute', 1, 0.90, true, now() + interval '100 seconds', 'alert')
"""


def _prediction(
    coin: str, model: int, minute: int, p: float, tag: str, result: str | None, change: float | None = None,
    high: float | None = None, low: float | None = None,
) -> tuple[Any, ...]:  # fmt: skip
    ts = T0 + timedelta(minutes=minute)
    evaluated = result is not None
    return (
        coin, model + 90, model, int(p >= 0.5), p, tag, "inaktiv" if evaluated else "aktiv", ts,
        ts + timedelta(minutes=10), ts + timedelta(minutes=11) if evaluated else None, 2.8e-8, 30.5, 1.25, 1,
        2.8e-8 * (1 + (change or 0) / 100) if evaluated else None, change, result, high, low,
        ts + timedelta(minutes=3) if high is not None else None,
        ts + timedelta(minutes=4) if low is not None else None,
    )  # fmt: skip


PREDICTION_ROWS = [
    _prediction("MintA", 11, 0, 0.81, "alert", "success", 6.0, 9.5, -1.0),
    _prediction("MintA", 11, 0, 0.81, "alert", "success", 6.0, 9.5, -1.0),  # the predecessor's duplicate
    _prediction("MintA", 11, 1, 0.55, "positiv", "failed", -2.0, 1.5, -3.0),
    _prediction("MintB", 11, 0, 0.20, "negativ", "not_applicable"),
    _prediction("MintB", 11, 5, 0.70, "alert", None),
    _prediction("MintC", 11, 6, 0.10, "negativ", None),
    _prediction("MintC", 12, 0, 0.30, "negativ", "success", 1.0, 2.0, -0.5),
    _prediction("MintD", 12, 2, 0.90, "alert", None),
]


async def _fill(dsn: str, paths: dict[str, Path]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        raw = json.dumps(["price_close", "rsi_14", "volume_sol"])
        await conn.execute(
            MODELS, json.dumps(FEATURES), str(paths["rf"]), str(paths["xgb"]), raw, str(paths["rsi"])
        )
        columns = [list(column) for column in zip(*PREDICTION_ROWS, strict=True)]
        await conn.execute(PREDICTIONS, *columns)
        await conn.execute(SCAN_CACHE)
    finally:
        await conn.close()


async def _move(
    pool: asyncpg.Pool, dsn: str, *, trusted: bool, models_dir: Path | None = None
) -> MoveOverReport:
    source = await asyncpg.connect(dsn)
    try:
        async with pool.acquire() as target:
            options = MoveOverOptions(trusted=trusted, models_dir=models_dir)
            return await move_over(source, target, options, SETTINGS)
    finally:
        await source.close()


async def _counts(pool: asyncpg.Pool) -> tuple[int, ...]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM coinfleet_models), (SELECT count(*) FROM coinfleet_predictions),"
            " (SELECT count(*) FROM coinfleet_evaluations), (SELECT count(*) FROM coinfleet_open_predictions)"
        )
    return tuple(row)


async def test_models_settings_and_history_arrive_and_a_second_run_is_a_no_op(
    pool: asyncpg.Pool, db_dsn: str, predecessor_dsn: str, tmp_path: Path
) -> None:
    paths = _pickled_models(tmp_path)
    await _fill(predecessor_dsn, paths)

    untrusted = await _move(pool, predecessor_dsn, trusted=False)
    assert all(m.status == "skipped" for m in untrusted.models)
    assert "--trust" in str(untrusted.models[0].reason)
    assert await _counts(pool) == (0, 0, 0, 0)

    report = await _move(pool, predecessor_dsn, trusted=True)
    outcome = {m.predecessor_id: m for m in report.models}
    assert [outcome[i].status for i in (11, 12, 13, 14)] == ["imported", "imported", "skipped", "skipped"]
    assert "'rsi_14'" in str(outcome[13].reason)  # the feature coinfleet does not compute, named
    assert "not a regular file" in str(outcome[14].reason)
    assert (outcome[11].predictions, outcome[11].evaluations) == (5, 3)
    assert (outcome[12].predictions, outcome[12].evaluations) == (2, 1)
    assert any("min_scan_interval_seconds" in note for note in outcome[11].notes)

    async with pool.acquire() as conn:
        rf = await registry.get(conn, "rf-pumper")
        xgb = await registry.get(conn, "XGB_20250602")
        assert rf.status == "active" and xgb.status == "inactive"
        assert rf.format == "skops" and xgb.format == "xgboost-json"
        assert rf.source["sha256"] == hashlib.sha256(paths["rf"].read_bytes()).hexdigest()
        assert rf.target.describe() == "up 5% in 600s" and xgb.target.describe() == "down 3% in 300s"
        assert rf.training_metrics["roc_auc"] == 0.66
        assert rf.settings.model_dump(include=set(CARRIED)) == CARRIED
        assert xgb.settings.webhook_enabled is False and xgb.settings.alert_threshold == 0.8
        history = await conn.fetch(
            "SELECT p.mint, p.tag, p.probability, e.result_at_horizon, e.result_within, e.max_change_pct"
            " FROM coinfleet_predictions p LEFT JOIN coinfleet_evaluations e ON e.prediction_id = p.id"
            " WHERE p.model_id = $1 ORDER BY p.metric_ts, p.mint",
            rf.id,
        )
        open_ids = await conn.fetchval(
            "SELECT count(*) FROM coinfleet_open_predictions WHERE model_id = $1", rf.id
        )
    assert [tuple(r) for r in history] == [
        ("MintA", "alert", 0.81, "success", "success", 9.5),
        ("MintB", "negative", 0.2, "not_applicable", "not_applicable", None),
        ("MintA", "positive", 0.55, "failed", "failed", 1.5),
        ("MintB", "alert", 0.7, None, None, None),
        ("MintC", "negative", 0.1, None, None, None),
    ]
    assert open_ids == 2  # the two it had not evaluated yet: coinfleet evaluates them

    # the ignore windows still running arrive, and outlast the rebuild of the scan cache from the
    # predictions brought over (which recounts the stored predictions by tag)
    assert (outcome[11].ignore_windows, outcome[12].ignore_windows) == (2, 0)
    async with pool.acquire() as conn:
        states = await load_states(conn, rf.id)
        scan_rows = await conn.fetch("SELECT * FROM coinfleet_scan_state ORDER BY model_id, mint")
    assert {mint: (s.ignore_reason, s.last_tag) for mint, s in states.items() if s.ignore_until} == {
        "MintB": (Tag.ALERT, Tag.ALERT),
        "MintE": (Tag.NEGATIVE, Tag.NEGATIVE),
    }
    assert states["MintB"].ignore_until is not None and states["MintB"].ignore_until > datetime.now(UTC)
    assert (states["MintB"].stored_negative, states["MintB"].stored_alert) == (1, 1)
    assert states["MintA"].ignore_until is None and states["MintA"].stored_alert == 1

    before = await _counts(pool)
    again = await _move(pool, predecessor_dsn, trusted=True)
    assert not again.changed
    assert [m.status for m in again.models] == ["present", "present", "skipped", "skipped"]
    assert await _counts(pool) == before
    async with pool.acquire() as conn:
        assert await conn.fetch("SELECT * FROM coinfleet_scan_state ORDER BY model_id, mint") == scan_rows


CARRIED = {
    "alert_threshold": 0.65,
    "phases": [1, 2],
    "webhook_url": "https://n8n.example.com/webhook/rf",
    "webhook_enabled": True,
    "send_modes": ["alerts_only", "negative_only"],
    "coin_filter_mode": "whitelist",
    "coin_whitelist": ["MintA", "MintB"],
    "ignore_bad_seconds": 30.0,
    "ignore_positive_seconds": 60.0,
    "ignore_alert_seconds": 120.0,
    "min_scan_interval_seconds": 0.0,
    "max_log_entries_negative": 5,
    "max_log_entries_positive": 6,
    "max_log_entries_alert": 7,
    "send_ignored": True,
}


async def test_the_command_line_takes_the_files_from_a_folder(
    db_dsn: str, predecessor_dsn: str, tmp_path: Path
) -> None:
    folder = tmp_path / "copied"
    folder.mkdir()
    paths = _pickled_models(folder)
    # the stored paths are where the predecessor kept them; --models-dir says where they are now
    await _fill(predecessor_dsn, {k: Path("/app/models") / p.name for k, p in paths.items()})
    command = [
        sys.executable, "-m", "coinfleet", "migrate-from-pump-server", "--database-url", predecessor_dsn,
        "--models-dir", str(folder), "--trust", "--json",
    ]  # fmt: skip
    env = {**os.environ, "DATABASE_URL": db_dsn, "COINFLEET_LOG_LEVEL": "warning"}
    runs = [
        await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=300)
        for _ in range(2)
    ]
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    assert [m["status"] for m in first["models"]] == ["imported", "imported", "skipped", "skipped"]
    assert first["changed"] and not second["changed"]
    assert "pickle" in runs[0].stderr  # the warning of what --trust means
