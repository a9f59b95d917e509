"""`coinfleet bench evaluation`: evaluations/s, and how long a small model waits behind a huge backlog.

One model has 1,000,000 due predictions, another 10, on the same coins; rounds run until nothing is
due. The small model must be finished in round 1, and the whole backlog at ≥ 100,000 evaluations/s.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from rich.table import Table

from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, resolve, with_database
from coinfleet.db.migrate import migrate
from coinfleet.db.sql import query
from coinfleet.evaluation.rounds import RoundConfig, RoundResult, data_clock, round_config, run_round
from coinfleet.targets import TargetSpec

#: bars are this many seconds apart; predictions look 60 s (6 bars) ahead
BAR_SECONDS = 10.0
TARGET = TargetSpec(kind="change", direction="up", change_percent=3.0, horizon_seconds=60)
START = datetime(2026, 1, 1, tzinfo=UTC)
#: prediction bars per coin; coins = predictions / PREDICTION_BARS
PREDICTION_BARS = 100


async def run(settings: Settings, *, big: int = 1_000_000, small: int = 10) -> dict[str, Any]:
    """Seed a throwaway database, evaluate everything in rounds, drop it; the measured numbers."""
    target = await resolve(settings)
    name = f"coinfleet_bench_eval_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(target.dsn, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')  # name is ours
        try:
            return await _measure(with_database(target.dsn, name), settings, big=big, small=small)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
        if target.started_embedded:
            embedded.stop(settings.pgdata)


async def _measure(dsn: str, settings: Settings, *, big: int, small: int) -> dict[str, Any]:
    pool = await create_pool(dsn, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            big_id, small_id = await _seed(conn, big=big, small=small)
        config = round_config(settings)
        rounds, seconds = await _evaluate_all(pool, config)
    finally:
        await pool.close()
    total = sum(r.total for r in rounds)
    return {
        "big_predictions": big,
        "small_predictions": small,
        "rounds": len(rounds),
        "base_quota": config.base_quota,
        "evaluated": total,
        "seconds": round(seconds, 3),
        "evaluations_per_s": round(total / seconds) if seconds else 0,
        "small_model_wait_rounds": _finished_in(rounds, small_id, small),
        "big_model_rounds": _finished_in(rounds, big_id, big),
    }


async def _seed(conn: asyncpg.Connection, *, big: int, small: int) -> tuple[int, int]:
    """Both models, their predictions (set-based) and the bars they are judged on."""
    coins = max(1, big // PREDICTION_BARS)
    bars = PREDICTION_BARS + int(TARGET.horizon_seconds / BAR_SECONDS) + 2
    await conn.execute(query("bench_insert_metrics"), coins, bars, BAR_SECONDS, START)
    ids = []
    for model, count in (("bench-big", big), ("bench-small", small)):
        model_id = await conn.fetchval(
            query("bench_insert_model"), f"{model}-{uuid.uuid4().hex[:6]}", json.dumps(TARGET.to_dict())
        )
        await conn.execute(
            query("bench_insert_predictions"), model_id, count, coins, PREDICTION_BARS, BAR_SECONDS, START
        )
        ids.append(model_id)
    await conn.execute(query("bench_analyze"))
    return ids[0], ids[1]


async def _evaluate_all(pool: asyncpg.Pool, config: RoundConfig) -> tuple[list[RoundResult], float]:
    """Rounds at the data clock until a round finds nothing; (rounds with work, seconds)."""
    async with pool.acquire() as conn:
        clock = await data_clock(conn)
    if clock is None:
        raise RuntimeError("the evaluation benchmark found no metric rows to take its clock from")
    rounds: list[RoundResult] = []
    started = time.perf_counter()
    while (result := await run_round(pool, config, clock)).total:
        rounds.append(result)
    return rounds, time.perf_counter() - started


def _finished_in(rounds: list[RoundResult], model_id: int, expected: int) -> int | None:
    """The 1-based round in which the model's last due prediction was evaluated."""
    done = 0
    for number, result in enumerate(rounds, start=1):
        done += len(result.evaluated.get(model_id, []))
        if done >= expected:
            return number
    return None


def render(result: dict[str, Any]) -> Table:
    """The measured numbers next to their goals."""
    table = Table(title="coinfleet bench evaluation")
    for column in ("measure", "value", "goal"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        "predictions (big / small model)",
        f"{result['big_predictions']:,} / {result['small_predictions']}",
        "",
    )
    table.add_row("evaluations/s", f"{result['evaluations_per_s']:,}", "≥ 100,000")
    table.add_row("small model finished in round", str(result["small_model_wait_rounds"]), "1")
    table.add_row("rounds for the big model", str(result["big_model_rounds"]), "")
    table.add_row("base quota per round", f"{result['base_quota']:,}", "")
    table.add_row("seconds", f"{result['seconds']:.2f}", "")
    return table
