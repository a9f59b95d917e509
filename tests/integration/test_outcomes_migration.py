"""Migration 0011 keeps every outcome stored before it, unchanged, and marks it as judged by the former
rule (first row in [end, end + grace]); outcomes stored after it are marked as judged as of the end."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from test_evaluation_support import T0

from coinfleet.db.migrate import migrate
from support import migrated_before

AS_OF_MIGRATION = 11
#: one outcome of each status and result the former rule stored
OLD_OUTCOMES = [
    (1, "ok", 100.0, 112.0, 12.0, True, True, "success", "success"),
    (2, "ok", 100.0, 95.0, -5.0, False, True, "failed", "success"),
    (3, "no_data", 100.0, None, None, None, False, "not_applicable", "not_applicable"),
    (4, "invalid_price", None, None, None, None, None, "not_applicable", "not_applicable"),
]


async def _store_old_outcomes(conn: asyncpg.Connection) -> None:
    await conn.executemany(
        "INSERT INTO coinfleet_evaluations (prediction_id, model_id, status, price_at_prediction,"
        " price_at_horizon, horizon_observed_at, change_at_horizon_pct, reached_at_horizon, hit_within,"
        " result_at_horizon, result_within, grace_seconds, evaluated_at)"
        " VALUES ($1, 7, $2, $3, $4, $5, $6, $7, $8, $9, $10, 120, $11)",
        [
            (pid, status, p0, price, None if price is None else T0, change, reached, within, r_end, r_in, T0)
            for pid, status, p0, price, change, reached, within, r_end, r_in in OLD_OUTCOMES
        ],
    )


async def _outcomes(conn: asyncpg.Connection) -> list[dict[str, object]]:
    rows = await conn.fetch("SELECT * FROM coinfleet_evaluations ORDER BY prediction_id")
    return [dict(row.items()) for row in rows]


async def test_the_migration_keeps_and_marks_every_stored_outcome(server_dsn: str) -> None:
    async with migrated_before(server_dsn, AS_OF_MIGRATION) as conn:
        await _store_old_outcomes(conn)
        before = await _outcomes(conn)
        await migrate(conn)
        after = await _outcomes(conn)
        assert len(after) == len(before) == len(OLD_OUTCOMES)
        assert [{k: v for k, v in row.items() if k != "rule"} for row in after] == before, "none re-judged"
        assert {row["rule"] for row in after} == {"first_row_in_grace"}
        await conn.execute(
            "INSERT INTO coinfleet_evaluations (prediction_id, model_id, status, result_at_horizon,"
            " result_within, grace_seconds, evaluated_at) VALUES (5, 7, 'ok', 'failed', 'failed', 120, $1)",
            T0 + timedelta(days=1),
        )
        rules = await conn.fetch("SELECT prediction_id, rule FROM coinfleet_evaluations ORDER BY 1")
        assert [(r["prediction_id"], r["rule"]) for r in rules] == [
            (1, "first_row_in_grace"),
            (2, "first_row_in_grace"),
            (3, "first_row_in_grace"),
            (4, "first_row_in_grace"),
            (5, "as_of"),
        ]
