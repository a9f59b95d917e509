"""Webhook delivery: one lane per model with pending alerts, so a dead webhook only delays its own model.

A lane (lane.py) sends its model's alerts in outbox order: it claims a run of alerts from the head of
the queue and starts them in order over kept-alive connections, several at once but never two of one
coin, so a coin's alert never goes before every older alert of that coin is delivered or dead (with one
request in flight per model, the same holds for all of the model's alerts). A receiver that fails opens
its circuit breaker: every lane sending to it pauses, and one alert probes it with backoff; a paused
lane makes no attempt. Requests of all lanes share a bounded number of slots. Workers on any number of
machines may run side by side; claims (claims.py) are short transactions naming the worker's database
session, never a transaction held open across a request, and a claim whose session ended is taken back
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import asyncpg
import structlog

from coinfleet.alerts import outbox
from coinfleet.alerts.claims import Claims
from coinfleet.alerts.config import DeliveryConfig
from coinfleet.alerts.lane import Lane, LaneContext
from coinfleet.alerts.receivers import Receivers
from coinfleet.config import Settings
from coinfleet.constants import ALERTS_CHANNEL
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.events.notifier import Notifier, Signal

log = structlog.get_logger(__name__)
STOP_GRACE_SECONDS = 2.0  #: how long `stop` lets attempts in flight finish before cancelling them


class Deliverer:
    """Delivers the outbox: wakes on NOTIFY or a slow poll, runs one lane per model with pending alerts."""

    def __init__(self, *, pool: asyncpg.Pool, dsn: str, settings: Settings) -> None:
        self._pool = pool
        self._config = DeliveryConfig.from_settings(settings)
        self._notifier = Notifier(dsn, (ALERTS_CHANNEL,))
        self._claims = Claims(pool=pool, dsn=dsn)
        self._receivers = Receivers(self._config)
        self._context = LaneContext(
            pool=pool,
            config=self._config,
            claims=self._claims,
            receivers=self._receivers,
            slots=asyncio.Semaphore(self._config.max_concurrency),
            random=random.Random(),
            stopping=lambda: self._stopping,
            nudge=lambda: self._wake.set(),
        )
        self._lanes: dict[int, tuple[asyncio.Task[None], Lane]] = {}
        self._wake = Signal()
        self._stopping = False
        self._last_prune = float("-inf")
        self._outage = Outage("delivery")

    def stop(self) -> None:
        """Ask `run` to finish the attempts in flight and return."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped."""
        await self._notifier.start()
        self._wake = self._notifier.subscribe(ALERTS_CHANNEL)
        try:
            while not self._stopping:
                await self._tick()
                await self._wake.wait(self._config.poll_seconds)
            await self._stop_lanes()
            with contextlib.suppress(*DATABASE_ERRORS):  # a last try: what stays parked is sent again
                await self._claims.settle_parked()
        finally:
            await self._close()

    async def _close(self) -> None:
        await self._receivers.aclose()
        await self._claims.close()
        await self._notifier.close()

    async def _tick(self) -> None:
        try:
            await self._claims.keep_session()
            await self._claims.settle_parked()  # before anything else: their claims may be about to lapse
            await self.dispatch()
            await self._prune_when_due()
        except DATABASE_ERRORS as exc:
            self._outage.failed(exc)  # said once per outage; the poll paces the retries
            return
        except asyncpg.PostgresError as exc:
            log.warning("delivery_dispatch_failed", error=str(exc))
        self._outage.succeeded()

    async def dispatch(self) -> None:
        """Start a lane for every model with pending alerts; wake the lanes already running."""
        async with self._pool.acquire() as conn:
            model_ids = await outbox.models_with_pending(conn)
        self._lanes = {k: lane for k, lane in self._lanes.items() if not lane[0].done()}
        for model_id in model_ids:
            running = self._lanes.get(model_id)
            if running is not None:
                running[1].signal.set()
                continue
            lane = Lane(model_id, self._context)
            task = asyncio.create_task(lane.run(), name=f"delivery:{model_id}")
            self._lanes[model_id] = (task, lane)

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self._config.prune_interval_seconds:
            return
        self._last_prune = now
        async with self._pool.acquire() as conn:
            pruned = await outbox.prune(conn, self._config.retention_seconds)
        log.debug("alert_log_pruned", rows=pruned)

    async def _stop_lanes(self) -> None:
        """Let attempts in flight finish for a short grace period, then cancel the rest (their
        attempts are logged as cut short and their alerts stay pending)."""
        for _, lane in self._lanes.values():
            lane.signal.set()
        tasks = [task for task, _ in self._lanes.values() if not task.done()]
        if tasks:
            _, pending = await asyncio.wait(
                tasks, timeout=min(STOP_GRACE_SECONDS, self._config.lease_seconds)
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._lanes.clear()
