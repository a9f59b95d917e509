"""`coinfleet serve`: the database, the lanes, until a signal says stop."""

from __future__ import annotations

import asyncio
import signal

import structlog

from coinfleet.config import Settings
from coinfleet.db.database import open_database
from coinfleet.pipeline.supervisor import Supervisor

log = structlog.get_logger(__name__)


async def serve(settings: Settings) -> None:
    """Run every active model's lane until SIGINT or SIGTERM; stop what was started."""
    async with open_database(settings) as db:
        supervisor = Supervisor(pool=db.pool, dsn=db.dsn, settings=settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        log.info("serving", database="external" if settings.database_url else "embedded")
        await supervisor.run()
    log.info("stopped")
