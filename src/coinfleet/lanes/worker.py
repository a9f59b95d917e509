"""`coinfleet worker`: lanes, evaluation, alert delivery and the drift watcher with no interface; any
number of workers (and `serve` processes) on any number of machines share one database through leases."""

from __future__ import annotations

import asyncio
import signal

import structlog

from coinfleet.config import Settings
from coinfleet.db.database import open_database
from coinfleet.lanes.serve import deliver_alerts, evaluate_predictions, serve_lanes, watch_drift

log = structlog.get_logger(__name__)


async def work(settings: Settings) -> None:
    """Run the lanes placed on this worker, evaluation, delivery and the drift watcher until SIGINT or
    SIGTERM."""
    # started while PostgreSQL restarts (a worker restarted after a crash, machines booting), it waits
    async with open_database(settings, wait=True) as db:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("working", database="external" if settings.database_url else "embedded")
        delivery = asyncio.create_task(deliver_alerts(db, settings, stop))
        evaluation = asyncio.create_task(evaluate_predictions(db, settings, stop))
        drift = asyncio.create_task(watch_drift(db, settings, stop))
        try:
            await serve_lanes(db, settings, stop)
        finally:
            stop.set()
            await delivery
            await evaluation
            await drift
    log.info("stopped")
