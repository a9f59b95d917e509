"""Leases: one owner per model at a time, fenced late writes, models spread and moved between workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import asyncpg
import pytest

from coinfleet.config import Settings
from coinfleet.constants import CURSOR_MOVED_SQLSTATE
from coinfleet.errors import Fenced
from coinfleet.events.cursor import Cursor, load_cursor
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.factory import inline_runner
from coinfleet.lanes.leases import LeaseKeeper
from coinfleet.lanes.rules import Tag
from coinfleet.lanes.store import Batch, store_batches
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.service import health as service_health
from coinfleet.service import models as service_models
from support import LATE_TX, market_rows, new_prediction

SETTINGS = Settings(poll_interval_seconds=0.2, batch_max_events=300)
LOCK_WAITS = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)
EXPIRE = "UPDATE coinfleet_leases SET expires_at = now() - interval '1 second' WHERE model_id = $1"


async def activate(pool: asyncpg.Pool, bundle: ModelBundle, *names: str) -> list[ModelRecord]:
    chosen = ModelSettings(min_scan_interval_seconds=0)
    async with pool.acquire() as conn:
        return [
            await import_bundle(conn, replace(bundle, name=name), settings=chosen, activate=True)
            for name in names
        ]


def batch(model: ModelRecord, seq: int, epoch: int) -> Batch:
    predictions = [new_prediction(f"coin{seq}", seq, 0.9, Tag.ALERT, seq=seq)]
    return Batch(
        model=model, predictions=predictions, states={}, cursor=Cursor(tx=LATE_TX, seq=seq),
        keeps_scan_cache=False, epoch=epoch,
    )  # fmt: skip


async def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_late_batch_of_a_lease_taken_over_stores_nothing(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    (model,) = await activate(pool, small_bundle, "fenced")
    stalled = LeaseKeeper(pool, seconds=60, capacity=1, worker_id="stalled")
    taker = LeaseKeeper(pool, seconds=60, capacity=1, worker_id="taker")
    old = await stalled.acquire(model.id)
    assert old is not None
    assert await taker.acquire(model.id) is None  # held and current: nobody else gets it
    async with pool.acquire() as conn:
        await conn.execute(EXPIRE, model.id)  # the stalled worker missed its heartbeats
    new = await taker.acquire(model.id)
    assert new is not None and new.epoch == old.epoch + 1
    async with pool.acquire() as conn:
        with pytest.raises(Fenced):
            await store_batches(conn, [batch(model, 5, old.epoch)])
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == 0
        assert (await load_cursor(conn, model.id)).tx < LATE_TX
        await store_batches(conn, [batch(model, 6, new.epoch)])  # the new owner stores
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == 1
    assert await stalled.heartbeat() == {model.id}  # the stalled worker learns it lost the lease
    assert stalled.held == {}


async def test_a_fenced_batch_in_a_group_fails_the_group_and_no_other_batch_is_half_stored(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    kept, lost = await activate(pool, small_bundle, "kept", "lost")
    worker = LeaseKeeper(pool, seconds=60, capacity=1, worker_id="w")
    kept_lease, lost_lease = await worker.acquire(kept.id), await worker.acquire(lost.id)
    assert kept_lease is not None and lost_lease is not None
    async with pool.acquire() as conn:
        await conn.execute(EXPIRE, lost.id)
    assert await LeaseKeeper(pool, seconds=60, capacity=1, worker_id="other").acquire(lost.id)
    async with pool.acquire() as conn:
        with pytest.raises(Fenced):
            await store_batches(conn, [batch(kept, 3, kept_lease.epoch), batch(lost, 3, lost_lease.epoch)])
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == 0
        await store_batches(conn, [batch(kept, 3, kept_lease.epoch)])  # alone, the current one stores
        assert (await load_cursor(conn, kept.id)).seq == 3


async def test_a_cursor_never_moves_backwards(pool: asyncpg.Pool, small_bundle: ModelBundle) -> None:
    (model,) = await activate(pool, small_bundle, "forward")
    lease = await LeaseKeeper(pool, seconds=60, capacity=1, worker_id="w").acquire(model.id)
    assert lease is not None
    async with pool.acquire() as conn:
        await store_batches(conn, [batch(model, 8, lease.epoch)])
        with pytest.raises(Fenced):  # the same events again (a commit a broken connection hid)
            await store_batches(conn, [batch(model, 8, lease.epoch)])
        with pytest.raises(Fenced):
            await store_batches(conn, [batch(model, 7, lease.epoch)])
        assert (await load_cursor(conn, model.id)).seq == 8
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == 1


async def test_a_takeover_waits_for_the_store_in_flight_and_starts_after_it(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    (model,) = await activate(pool, small_bundle, "ordered")
    old = await LeaseKeeper(pool, seconds=60, capacity=1, worker_id="old").acquire(model.id)
    assert old is not None
    taker = LeaseKeeper(pool, seconds=60, capacity=1, worker_id="taker")
    async with pool.acquire() as writer, pool.acquire() as conn:
        await conn.execute(EXPIRE, model.id)
        store = writer.transaction()
        await store.start()
        await store_batches(writer, [batch(model, 4, old.epoch)])  # stored, not yet committed
        takeover = asyncio.create_task(taker.acquire(model.id))
        await until_waiting(conn)
        assert not takeover.done() and await conn.fetchval(LOCK_WAITS) == 1
        await store.commit()
        new = await takeover
        assert new is not None and new.epoch == old.epoch + 1
        assert (await load_cursor(conn, model.id)).seq == 4  # the new owner starts after the batch


async def test_a_lease_taken_while_a_heartbeat_is_in_flight_is_kept(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    (model,) = await activate(pool, small_bundle, "fresh")
    keeper = LeaseKeeper(pool, seconds=60, capacity=1, worker_id="w")
    async with pool.acquire() as blocker, pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO coinfleet_workers (id, host, pid, capacity, expires_at)"
            " VALUES ('dead', 'h', 1, 1, '2000-01-01')"
        )
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM coinfleet_workers WHERE id = 'dead' FOR UPDATE")
        beat = asyncio.create_task(keeper.heartbeat())
        await until_waiting(conn)  # its renewals are made; it waits to forget the dead worker
        lease = await keeper.acquire(model.id)  # a lane starting meanwhile (a worker's first sync)
        assert lease is not None
        await lock.rollback()
        assert await beat == set()  # a lease the heartbeat did not renew is not lost
    assert keeper.held == {model.id: lease}
    assert await keeper.heartbeat() == set()


async def test_two_workers_split_the_models_and_score_every_event_once_across_joins_and_leaves(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    models = await activate(pool, small_bundle, "m1", "m2", "m3", "m4")
    rows = sorted(market_rows(coins=12, seconds=600), key=lambda r: r.timestamp)
    parts = [rows[i::3] for i in range(3)]
    first = worker(pool, db_dsn, "a")
    first_task = asyncio.create_task(first.run())
    overlaps: list[set[int]] = []
    try:
        await until(lambda: running(first) == {m.id for m in models})
        await feed(pool, parts[0])
        second = worker(pool, db_dsn, "b")
        second_task = asyncio.create_task(second.run())
        watch = asyncio.create_task(watch_overlap(first, second, overlaps))
        await until(lambda: len(running(first)) == 2 and len(running(second)) == 2)  # the join
        await feed(pool, parts[1])
        second.stop()
        await second_task  # the leave: its leases are handed back at once
        await until(lambda: len(running(first)) == 4)
        watch.cancel()
        await feed(pool, parts[2])
        await until_scored(pool, models, len(rows))
    finally:
        first.stop()
        await first_task
    assert overlaps == []
    await assert_each_event_once(pool, models, rows)


def worker(pool: asyncpg.Pool, dsn: str, name: str) -> Supervisor:
    leases = LeaseKeeper(pool, seconds=2, capacity=1, worker_id=name)
    return Supervisor(pool=pool, dsn=dsn, settings=SETTINGS, runner_factory=inline_runner, leases=leases)


def running(supervisor: Supervisor) -> set[int]:
    return {lane.model.id for lane in supervisor.lanes}


async def watch_overlap(a: Supervisor, b: Supervisor, overlaps: list[set[int]]) -> None:
    """Note every moment at which both run a lane of the same model."""
    while True:
        if both := running(a) & running(b):
            overlaps.append(both)
        await asyncio.sleep(0.005)


async def feed(pool: asyncpg.Pool, rows: list[MetricRow]) -> None:
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)


async def until_scored(pool: asyncpg.Pool, models: list[ModelRecord], count: int) -> None:
    query = "SELECT count(*) FROM coinfleet_predictions WHERE model_id = $1"
    async with asyncio.timeout(90):
        while True:
            async with pool.acquire() as conn:
                counts = [await conn.fetchval(query, m.id) for m in models]
            if all(c >= count for c in counts):
                return
            await asyncio.sleep(0.1)


async def assert_each_event_once(
    pool: asyncpg.Pool, models: list[ModelRecord], rows: list[MetricRow]
) -> None:
    async with pool.acquire() as conn:
        for model in models:
            stored = await conn.fetch(
                "SELECT mint, metric_ts FROM coinfleet_predictions WHERE model_id = $1", model.id
            )
            assert sorted((r["mint"], r["metric_ts"]) for r in stored) == sorted(
                (r.mint, r.timestamp) for r in rows
            )


async def until_waiting(conn: asyncpg.Connection) -> None:
    """Until a session of this database waits for a lock."""
    async with asyncio.timeout(10):
        while not await conn.fetchval(LOCK_WAITS):
            await asyncio.sleep(0.02)


async def test_a_batch_after_one_the_server_lost_is_refused(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    (model,) = await activate(pool, small_bundle, "lost")
    lease = await LeaseKeeper(pool, seconds=60, capacity=1, worker_id="w").acquire(model.id)
    assert lease is not None
    async with pool.acquire() as conn:
        start = await load_cursor(conn, model.id)
        first = replace(batch(model, 3, lease.epoch), expected=start)
        await store_batches(conn, [first])
        # an asynchronous commit the server lost in a crash: the batch and its cursor are gone together
        await conn.execute("DELETE FROM coinfleet_predictions")
        await conn.execute(
            "UPDATE coinfleet_cursors SET tx = $2, seq = $3 WHERE model_id = $1",
            model.id,
            start.tx,
            start.seq,
        )
        with pytest.raises(asyncpg.PostgresError) as moved:  # the lane goes on from where it believes
            await store_batches(conn, [replace(batch(model, 6, lease.epoch), expected=first.cursor)])
        assert moved.value.sqlstate == CURSOR_MOVED_SQLSTATE  # not Fenced: the lease is still the lane's
        await store_batches(conn, [first])  # started again from the stored cursor, it stores the lost batch
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_predictions") == 1


async def test_a_lane_whose_cursor_moved_under_it_starts_again_and_scores_every_event_once(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    models = await activate(pool, small_bundle, "rewound")
    rows = sorted(market_rows(coins=10, seconds=400), key=lambda r: r.timestamp)
    half = len(rows) // 2
    supervisor = worker(pool, db_dsn, "only")
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: running(supervisor) == {models[0].id})
        async with pool.acquire() as conn:
            start = await load_cursor(conn, models[0].id)
        await feed(pool, rows[:half])
        await until_scored(pool, models, half)
        async with pool.acquire() as conn:  # the server lost every batch since `start` (as in a crash)
            await conn.execute("DELETE FROM coinfleet_predictions")
            await conn.execute("UPDATE coinfleet_cursors SET tx = $1, seq = $2", start.tx, start.seq)
        await feed(pool, rows[half:])
        await until_scored(pool, models, len(rows))
    finally:
        supervisor.stop()
        await task
    await assert_each_event_once(pool, models, rows)


async def test_the_lease_owner_shows_in_the_model_and_health_views(
    pool: asyncpg.Pool, small_bundle: ModelBundle
) -> None:
    owned, _ = await activate(pool, small_bundle, "owned", "free")
    worker = LeaseKeeper(pool, seconds=60, capacity=1, worker_id="host:1:abc")
    lease = await worker.acquire(owned.id)
    assert lease is not None
    lanes = {lane.name: lane for lane in await service_models.lanes(pool)}
    assert (lanes["owned"].owner, lanes["owned"].lease_epoch) == ("host:1:abc", lease.epoch)
    assert lanes["owned"].lease_expires_at is not None
    assert (lanes["free"].owner, lanes["free"].lease_epoch) == (None, None)
    assert (await service_health.health(pool)).owners == {"owned": "host:1:abc", "free": None}
    async with pool.acquire() as conn:
        await conn.execute(EXPIRE, owned.id)  # the worker stopped renewing: nobody scores it now
    (expired,) = await service_models.lanes(pool, owned.id)
    assert expired.owner is None and expired.lease_epoch == lease.epoch
