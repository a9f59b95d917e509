"""`coinfleet serve`: the database, the lanes, until a signal says stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
import structlog

from coinfleet.alerts.thread import DeliveryThread
from coinfleet.config import Settings
from coinfleet.db.database import Database, open_database
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.evaluation.rounds import evaluation_loop, loop_config
from coinfleet.lanes.leases import LeaseKeeper
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.models.drift import model_drift

log = structlog.get_logger(__name__)
#: answers whether every active model has its lane running in this process
LanesStarted = Callable[[], Awaitable[bool]]
#: more work for the serving process (the HTTP side): runs until `stop` is set
Companion = Callable[[Database, LanesStarted, asyncio.Event], Awaitable[None]]
#: scores in place of the lanes until `stop` is set (the sequential benchmark baseline)
Scoring = Callable[[Database, Settings, asyncio.Event], Awaitable[None]]


async def serve(
    settings: Settings, *, scoring: Scoring | None = None, companion: Companion | None = None
) -> None:
    """Score every active model until SIGINT or SIGTERM (with the lanes, or `scoring` when given), and
    run `companion` beside; stop what was started. Started while the database cannot be reached (down,
    restarting), it waits for it (the HTTP side starts once it is back); a refusal fails at once."""
    async with open_database(settings, wait=True) as db:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        scheduler = "lanes" if scoring is None else "sequential"
        log.info("serving", database="external" if settings.database_url else "embedded", scheduler=scheduler)
        delivery = asyncio.create_task(deliver_alerts(db, settings, stop))
        evaluation = asyncio.create_task(evaluate_predictions(db, settings, stop))
        drift = asyncio.create_task(watch_drift(db, settings, stop))
        # leases: a second serve or a worker on the same database shares the models instead of doubling them
        supervisor = Supervisor(
            pool=db.pool, dsn=db.dsn, settings=settings, leases=lease_keeper(db, settings)
        )
        side = asyncio.create_task(_companion(companion, db, supervisor, scoring is None, stop))
        try:
            if scoring is not None:
                await scoring(db, settings, stop)
            else:
                await run_until(supervisor, stop)
        finally:
            stop.set()
            await delivery
            await evaluation
            await drift
            await side
    log.info("stopped")


async def _companion(
    companion: Companion | None,
    db: Database,
    supervisor: Supervisor,
    lanes: bool,
    stop: asyncio.Event,
) -> None:
    if companion is None:
        return

    async def lanes_started() -> bool:
        return not lanes or await supervisor.all_lanes_started()

    try:
        await companion(db, lanes_started, stop)
    finally:
        stop.set()  # the companion failing (e.g. its port is taken) stops the process too


class Stoppable(Protocol):
    """A service that runs until asked to stop."""

    async def run(self) -> None:
        """Work until `stop` is called."""
        ...

    def stop(self) -> None:
        """Ask `run` to return."""
        ...


async def run_until(service: Stoppable, stop: asyncio.Event) -> None:
    """Run a service until `stop` is set (or it ends by itself), then stop it and wait for it."""
    task = asyncio.create_task(service.run())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    service.stop()
    await task


async def serve_lanes(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """One lane per active model placed on this process (leases shared with every other worker on the
    database) until `stop`."""
    leases = lease_keeper(db, settings)
    await run_until(Supervisor(pool=db.pool, dsn=db.dsn, settings=settings, leases=leases), stop)


def lease_keeper(db: Database, settings: Settings) -> LeaseKeeper:
    """This process's leases, with its configured capacity (its CPU cores unless set)."""
    capacity = settings.worker_capacity or float(os.cpu_count() or 1)
    return LeaseKeeper(db.pool, seconds=settings.lease_seconds, capacity=capacity)


async def deliver_alerts(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Deliver the webhook outbox until `stop`, on a thread with its own event loop and connections
    (a receiver's answer is stored without waiting for the lanes' work)."""
    await run_until(DeliveryThread(dsn=db.dsn, settings=settings), stop)


async def evaluate_predictions(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Evaluate due predictions in fair rounds until `stop`."""
    await evaluation_loop(db.pool, loop_config(settings), stop)


async def watch_drift(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Compute every active model's feature drift (which sets its PSI gauges) every
    `drift_refresh_seconds` until `stop`; a failed computation is logged and tried again next time, one
    the database was away for as soon as it is back (with the outage backoff)."""
    if not settings.drift_refresh_seconds:
        return
    outage = Outage("drift")
    while not stop.is_set():
        try:
            async with db.pool.acquire() as conn:
                for drift in await model_drift(conn, status="active"):
                    log.info("model_drift", model=drift.name, rows=drift.rows, drifted=drift.drifted)
        except DATABASE_ERRORS as exc:
            await outage.wait(exc, stop)
            continue
        except (asyncpg.PostgresError, ValueError) as exc:
            log.warning("model_drift_failed", error=str(exc))
        outage.succeeded()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.drift_refresh_seconds)
