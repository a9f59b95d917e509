"""Batches of several lanes stored in one statement: each keeps its own cursor, outbox ids and
totals, and a write that fails stores none of its batches."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg

from coinfleet.alerts.outbox import OutboxItem
from coinfleet.db.database import OwnConnection
from coinfleet.events.cursor import Cursor
from coinfleet.lanes.group_commit import GroupCommit
from coinfleet.lanes.rules import Tag
from coinfleet.lanes.starter import LANE_SERVER_SETTINGS
from coinfleet.lanes.store import Batch, store_batch, write_batches
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from support import LATE_TX, new_prediction

#: sessions of this database waiting for a lock
LOCK_WAITS = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


async def models(pool: asyncpg.Pool, bundle: ModelBundle, *names: str) -> list[ModelRecord]:
    async with pool.acquire() as conn:
        return [
            await import_bundle(conn, replace(bundle, name=name), settings=ModelSettings(), activate=True)
            for name in names
        ]


def batch(model: ModelRecord, mints: list[str], seq: int, *, hooked: bool = False) -> Batch:
    predictions = [new_prediction(mint, seq, 0.9, Tag.ALERT, seq=seq) for mint in mints]
    outbox = [
        OutboxItem(url="http://127.0.0.1:9/hook", row=p.row, probability=0.9, tag="alert", suppressed=None)
        for p in predictions
    ]
    return Batch(
        model=model, predictions=predictions, states={}, cursor=Cursor(tx=LATE_TX, seq=seq),
        keeps_scan_cache=False, outbox=outbox if hooked else (),
    )  # fmt: skip


async def stored(pool: asyncpg.Pool, model: ModelRecord) -> tuple[set[str], tuple[int, int]]:
    """The model's stored coins, and its cursor's seq and stored-prediction total."""
    async with pool.acquire() as conn:
        mints = await conn.fetch("SELECT mint FROM coinfleet_predictions WHERE model_id = $1", model.id)
        cursor = await conn.fetchrow(
            "SELECT seq, stored_predictions FROM coinfleet_cursors WHERE model_id = $1", model.id
        )
    return {r["mint"] for r in mints}, (cursor["seq"], cursor["stored_predictions"])


async def test_batches_handed_in_together_go_in_one_statement(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    a, b, c = await models(pool, small_bundle, "a", "b", "c")
    # two connections: the first write takes every batch handed in before it started
    group = GroupCommit([OwnConnection(db_dsn, server_settings=LANE_SERVER_SETTINGS) for _ in range(2)])
    try:
        done = await asyncio.gather(
            group.write(batch(a, ["x", "y"], 3)),
            group.write(batch(b, ["x"], 5)),
            group.write(batch(c, [], 9)),  # a batch whose events were all skipped moves its cursor too
        )
    finally:
        await group.close()
    assert list(done) == [True, True, True]
    assert (group.writes, group.batches) == (1, 3)
    assert await stored(pool, a) == ({"x", "y"}, (3, 2))
    assert await stored(pool, b) == ({"x"}, (5, 1))
    assert await stored(pool, c) == (set(), (9, 0))


async def test_a_write_that_fails_stores_none_of_its_batches(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    good, bad = await models(pool, small_bundle, "good", "bad")
    refused = batch(bad, ["x"], 1)
    refused = replace(refused, predictions=[replace(refused.predictions[0], probability=1.5)])  # CHECK fails
    group = GroupCommit([OwnConnection(db_dsn, server_settings=LANE_SERVER_SETTINGS)])
    try:
        done = await asyncio.gather(group.write(batch(good, ["y"], 2)), group.write(refused))
        assert list(done) == [False, False]
        assert await stored(pool, good) == (set(), (0, 0))
        # the group's connection still works: the next write stores
        assert await group.write(batch(good, ["y"], 2))
    finally:
        await group.close()
    assert await stored(pool, good) == ({"y"}, (2, 1))
    assert (group.writes, group.batches, group.failures) == (1, 1, 1)


async def test_a_repeated_prediction_is_skipped_by_the_group_itself(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    good, repeating = await models(pool, small_bundle, "good", "repeating")
    async with pool.acquire() as conn:  # as if x's metric rows at times 2 and 3 had come before, in
        for seq in (2, 3):  # an earlier transaction
            prediction = new_prediction("x", seq, 0.5, Tag.ALERT, seq=seq)
            await store_batch(conn, repeating, [prediction], {}, Cursor(tx=LATE_TX - 1, seq=seq))
    group = GroupCommit([OwnConnection(db_dsn, server_settings=LANE_SERVER_SETTINGS)])
    try:
        done = await asyncio.gather(
            group.write(batch(good, ["y"], 2)),
            group.write(batch(repeating, ["x", "z"], 2)),  # the group inserts plainly: the repeat fails it
        )
        assert list(done) == [True, True]  # written again skipping repeats, not handed back to the lanes
        assert (group.writes, group.repeats, group.failures) == (1, 1, 0)
        # the rows after a repeat are likely re-sent too: the next writes skip repeats from the start
        assert await group.write(batch(repeating, ["x", "w"], 3))
        assert (group.writes, group.repeats, group.failures) == (2, 1, 0)
    finally:
        await group.close()
    assert await stored(pool, good) == ({"y"}, (2, 1))
    assert await stored(pool, repeating) == ({"x", "z", "w"}, (3, 4))


async def test_outbox_rows_point_at_their_own_models_predictions(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    a, b = await models(pool, small_bundle, "a", "b")
    async with pool.acquire() as conn:
        await write_batches(
            conn, [batch(a, ["x", "y"], 3, hooked=True), batch(b, ["x"], 4, hooked=True)], skip_repeats=False
        )
        rows = await conn.fetch(
            "SELECT a.model_id AS alert_model, p.model_id AS prediction_model, a.mint, p.mint AS p_mint"
            " FROM coinfleet_alerts AS a JOIN coinfleet_predictions AS p ON p.id = a.prediction_id"
        )
    assert len(rows) == 3
    assert all(r["alert_model"] == r["prediction_model"] and r["mint"] == r["p_mint"] for r in rows)


async def test_a_lane_that_stops_waiting_leaves_the_write_to_finish(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    a, b = await models(pool, small_bundle, "a", "b")
    group = GroupCommit([OwnConnection(db_dsn, server_settings=LANE_SERVER_SETTINGS)])
    async with pool.acquire() as blocker, blocker.transaction():
        # the group's write will wait for this lock on a's cursor row
        await blocker.execute("SELECT 1 FROM coinfleet_cursors WHERE model_id = $1 FOR UPDATE", a.id)
        stopped = asyncio.create_task(group.write(batch(a, ["x"], 3)))
        waiting = asyncio.create_task(group.write(batch(b, ["y"], 4)))
        async with asyncio.timeout(30):
            while not await pool.fetchval(LOCK_WAITS):  # outside the blocker's snapshot of the view
                await asyncio.sleep(0.01)
        stopped.cancel()
    try:
        async with asyncio.timeout(30):  # a write that choked on the stopped lane would never answer
            assert await waiting
    finally:
        await group.close()
    assert stopped.cancelled()
    # the batch whose lane stopped waiting went in with the rest: its cursor moved with its predictions
    assert await stored(pool, a) == ({"x"}, (3, 1))
    assert await stored(pool, b) == ({"y"}, (4, 1))
