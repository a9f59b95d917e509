"""Hourly statistics rollups: each model's judged predictions summed per hour of metric time, so its
statistics over all time read the rollup and a short live tail instead of every prediction it made.

A model's rollup reaches an id (`through_id`): every prediction of the model up to it is summed in, and
none above. It moves up only over predictions that can no longer change: all judged (it stops below
the model's oldest open prediction), all committed (an id is taken before its transaction commits, so
the newest id seen becomes a candidate that is used only once every transaction running when it was
seen has ended and SETTLE_SECONDS have passed), and at most STEP of the model's predictions per call,
so catching up on a long history is many short transactions. `rollup_loop` runs beside the evaluation
rounds (coinfleet.evaluation.rounds.evaluation_loop); statistics read the rollups through
`coinfleet.service.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from coinfleet.db.outage import DATABASE_ERRORS
from coinfleet.db.sql import query

log = structlog.get_logger(__name__)
#: most predictions of one model a call adds to its rollup (about half a second on a busy 2-core machine)
STEP = 20_000
#: a candidate id is used no sooner than this after it was seen (see the module docstring)
SETTLE_SECONDS = 10.0


async def advance_model(
    conn: asyncpg.Connection, model_id: int, *, step: int = STEP, settle_seconds: float = SETTLE_SECONDS
) -> int:
    """Move one model's rollup as far as it may go now (at most `step` predictions); rows added."""
    added = 0
    await conn.execute(query("rollup_create"), model_id)
    async with conn.transaction():
        state = await conn.fetchrow(query("rollup_begin"), model_id, settle_seconds)
        if state is None:  # another process is advancing this model
            return 0
        through, candidate = state["through_id"], state["candidate_id"]
        if candidate is not None and state["settled"]:
            limits = await conn.fetchrow(query("rollup_limit"), model_id, through, step)
            reach = min(
                [candidate] + [v for v in (limits["before_open"], limits["step_end"]) if v is not None]
            )
            if reach > through:
                added = int(await conn.fetchval(query("rollup_add"), model_id, through, reach))
                through = reach
        if candidate is None or (state["settled"] and through >= candidate):
            await conn.execute(query("rollup_candidate"), model_id)
    return added


async def advance(pool: asyncpg.Pool, *, step: int = STEP, settle_seconds: float = SETTLE_SECONDS) -> int:
    """One step of every model's rollup; rows added in all."""
    async with pool.acquire() as conn:
        models = [r["id"] for r in await conn.fetch(query("rollup_models"))]
        added = 0
        for model_id in models:
            added += await advance_model(conn, model_id, step=step, settle_seconds=settle_seconds)
    return added


async def rollup_loop(pool: asyncpg.Pool, stop: asyncio.Event, interval_seconds: float) -> None:
    """Advance every rollup, then again after `interval_seconds` (at once while catching up), until `stop`.
    A failed advance is logged and tried again after the interval: the statistics read the rows the
    rollup does not hold yet, so a late rollup costs time, never a wrong figure."""
    while not stop.is_set():
        added = 0
        try:
            added = await advance(pool)
        except (*DATABASE_ERRORS, asyncpg.PostgresError) as exc:
            log.warning("stats_rollup_failed", error=str(exc))
        except Exception:  # a fault here must not stop the evaluation rounds beside it
            log.exception("stats_rollup_failed")
        if not added:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_seconds)
