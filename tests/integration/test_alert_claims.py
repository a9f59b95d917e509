"""Claims on alerts never let two workers send one alert: a claim names a live session, an attempt starts
only while that session lives, and a claim outlives a server restart long enough for its worker to store
the answer it got meanwhile (each checked against a real PostgreSQL and a real HTTP receiver)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from test_alerts_delivery import (
    delivered,
    delivering,
    eventually,
    new_model,
    queue,
    settings,
    some_rows,
)

from coinfleet.alerts import outbox
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, fresh_database
from coinfleet.db.outage import DOWN
from coinfleet.models.bundle import ModelBundle
from support import Receiver, count

GRACE = 10.0


async def ended_session(db_dsn: str, worker: str) -> outbox.Session:
    """The identity of a session that has ended (its worker's connection closed)."""
    conn = await asyncpg.connect(db_dsn)
    session = await outbox.session(conn, worker)
    await conn.close()
    return session


async def test_a_claim_for_a_session_that_ended_takes_nothing(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    model = await new_model(pool, small_bundle, "stale", webhook_url="http://127.0.0.1:9/hook")
    await queue(pool, model, "http://127.0.0.1:9/hook", some_rows(3))
    stale = await ended_session(db_dsn, "stale-worker")
    async with pool.acquire() as conn:
        claim = await outbox.claim(conn, model.id, stale, 3600, 3, GRACE)
    assert claim.alerts == []  # its claims would be void at once: another worker could send them too
    assert await count(pool, "SELECT count(*) FROM coinfleet_alerts WHERE claimed_by IS NOT NULL") == 0
    assert await count(pool, "SELECT count(*) FROM coinfleet_alert_attempts") == 0


async def test_an_attempt_starts_only_while_its_claims_session_lives(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    model = await new_model(pool, small_bundle, "fenced", webhook_url="http://127.0.0.1:9/hook")
    await queue(pool, model, "http://127.0.0.1:9/hook", some_rows(4))
    holder = await asyncpg.connect(db_dsn)
    session = await outbox.session(holder, "holder")
    async with pool.acquire() as conn:
        head, second, third, fourth = (await outbox.claim(conn, model.id, session, 3600, 4, GRACE)).alerts
        assert await outbox.start(conn, "holder", second) is not None
        await conn.execute(
            "UPDATE coinfleet_alerts SET claimed_until = now() - interval '1 second' WHERE id = $1", third.id
        )
        assert await outbox.start(conn, "holder", third) is None  # its claim ran out: another may take it
        await holder.close()  # the worker's session ends: another worker may take the alerts now
        assert await outbox.start(conn, "holder", fourth) is None  # so this worker must not send it
        other = await outbox.session(conn, "other")
        taken = await outbox.claim(conn, model.id, other, 3600, 4, GRACE)
    assert head.attempt_id is not None
    assert [a.id for a in taken.alerts] == [head.id, second.id, third.id, fourth.id]
    assert [a.attempts for a in taken.alerts] == [2, 1, 0, 0]  # the holder started neither of the last two


async def test_a_claim_from_before_a_server_restart_holds_for_the_grace(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    model = await new_model(pool, small_bundle, "restarted", webhook_url="http://127.0.0.1:9/hook")
    await queue(pool, model, "http://127.0.0.1:9/hook", some_rows(2))
    async with pool.acquire() as conn:
        # a claim whose session ended with the server's previous life (it started before this one)
        await conn.execute(
            "UPDATE coinfleet_alerts SET claimed_by = 'before', claimed_until = now() + interval '1 hour',"
            " claimed_pid = 0, claimed_backend_start = pg_postmaster_start_time() - interval '1 second'"
        )
        since_start = await conn.fetchval("SELECT extract(epoch FROM now() - pg_postmaster_start_time())")
        other = await outbox.session(conn, "other")
        head = await outbox.head(conn, model.id, since_start + 60)
        held = await outbox.claim(conn, model.id, other, 3600, 2, since_start + 60)
        ended = await outbox.head(conn, model.id, 0.0)
        taken = await outbox.claim(conn, model.id, other, 3600, 2, 0.0)
    assert head is not None and 55 < head.due_in <= 60 and held.alerts == []
    assert ended is not None and ended.due_in <= 0 and len(taken.alerts) == 2


@pytest.fixture
async def own_pool(own_server: tuple[Path, str]) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    dsn = await fresh_database(own_server[1], "claims")
    pool = await create_pool(dsn, max_size=4)
    try:
        yield pool, dsn
    finally:
        await pool.close()


@pytest.fixture
def outages_forgotten() -> Iterator[None]:
    """Two workers in one test process share the process-wide outage registry (`DOWN`), and a
    notifier stopped while it was reconnecting leaves its entry: later health tests must not see it."""
    before = dict(DOWN)
    try:
        yield
    finally:
        DOWN.clear()
        DOWN.update(before)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.usefixtures("outages_forgotten")
async def test_an_alert_answered_while_the_server_restarts_is_sent_once(
    own_server: tuple[Path, str], own_pool: tuple[asyncpg.Pool, str], small_bundle: ModelBundle
) -> None:
    pgdata, _ = own_server
    pool, dsn = own_pool
    receiver = Receiver()
    try:
        model = await new_model(pool, small_bundle, "restart", webhook_url=receiver.url)
        keys = await queue(pool, model, receiver.url, some_rows(4))
        receiver.hold.clear()  # the first alert reaches the receiver, its answer waits for the restart
        async with AsyncExitStack() as workers:
            for _ in range(2):  # two workers: the other must not take the alert the first one sent
                worker_pool = await workers.enter_async_context(_pool(dsn))
                # a timeout longer than the restart: an answer that came too late is retried, by design
                config = settings(webhook_timeout_seconds=60)
                await workers.enter_async_context(delivering(worker_pool, dsn, config))
            await eventually(lambda: _received(receiver, 1), timeout=30)
            await asyncio.to_thread(embedded.stop, pgdata)  # every session ends, both workers live on
            await asyncio.sleep(0.5)
            await asyncio.to_thread(embedded.start, pgdata)
            receiver.hold.set()
            check = await workers.enter_async_context(_pool(dsn))
            await eventually(delivered(check, len(keys)), timeout=60)
        assert Counter(receiver.keys()) == Counter(keys)  # each exactly once
    finally:
        receiver.hold.set()
        receiver.close()


async def _received(receiver: Receiver, n: int) -> bool:
    return len(receiver.keys()) >= n


@asynccontextmanager
async def _pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of its own for one in-process worker."""
    pool = await create_pool(dsn, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
