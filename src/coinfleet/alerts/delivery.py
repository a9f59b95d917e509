"""Webhook delivery: one lane per model with pending alerts, so a dead webhook only delays its own model.

A lane sends its model's alerts in outbox order: it claims a run of alerts from the head of the queue
and starts them in order over kept-alive connections, several at once but never two of one coin, so a
coin's alert never goes before every older alert of that coin is delivered or dead (with one request
in flight per model, the same holds for all of the model's alerts). A receiver that fails opens its
circuit breaker: every lane sending to it pauses, and one alert probes it with backoff; a paused lane
makes no attempt. Requests of all lanes share a bounded number of slots. Workers on any number of
machines may run side by side; claims are short transactions naming the worker's database session,
never a transaction held open across a request, and a claim whose session ended is taken back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import httpx
import structlog

from coinfleet.alerts import outbox
from coinfleet.alerts.breaker import Breaker
from coinfleet.alerts.config import DeliveryConfig
from coinfleet.alerts.outbox import Attempt, ClaimedAlert, Outcome, Session
from coinfleet.alerts.payload import (
    headers,
)
from coinfleet.alerts.rules import Verdict, verdict
from coinfleet.alerts.runs import Run
from coinfleet.alerts.transport import (
    new_client,
    origin,
    post_webhook,
    url_prefix,
)
from coinfleet.config import Settings
from coinfleet.constants import ALERTS_CHANNEL
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.events.notifier import Notifier, Signal

log = structlog.get_logger(__name__)
LANE_ERROR_PAUSE_SECONDS = 1.0
STOP_GRACE_SECONDS = 2.0  #: how long `stop` lets attempts in flight finish before cancelling them
RUN_LENGTH = 32  #: most alerts one claim takes from the head of a model's queue
#: how long a claim outlives a server restart that ended its session: its worker may hold the answer to
#: an alert it sent just before and stores it once it reconnects (a delivery poll or two); taking the
#: alert sooner would send it twice, and a worker that died with the server delays its alerts this long
RESTART_GRACE_SECONDS = 10.0
CUT_SHORT = "cut short: the worker stopped before the answer came (the request may have reached the receiver)"


@dataclass(frozen=True, kw_only=True, slots=True)
class Receiver:
    """One receiver (scheme, host, port): its kept-alive connections and its circuit breaker."""

    client: httpx.AsyncClient
    breaker: Breaker


class Deliverer:
    """Delivers the outbox: wakes on NOTIFY or a slow poll, runs one lane per model with pending alerts."""

    def __init__(self, *, pool: asyncpg.Pool, dsn: str, settings: Settings) -> None:
        self._pool = pool
        self._dsn = dsn
        self._config = DeliveryConfig.from_settings(settings)
        self._notifier = Notifier(dsn, (ALERTS_CHANNEL,))
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._slots = asyncio.Semaphore(self._config.max_concurrency)
        self._lanes: dict[int, tuple[asyncio.Task[None], Signal]] = {}
        self._receivers: dict[tuple[str, str, int], Receiver] = {}
        self._wake = Signal()
        self._stopping = False
        self._random = random.Random()
        self._last_prune = float("-inf")
        self._outage = Outage("delivery")
        self._session_conn: asyncpg.Connection | None = None
        self._session: Session | None = None
        #: outcomes whose storing failed with the database away: stored before anything else when it is back
        self._parked: list[Outcome] = []

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
                await self._settle_parked()
        finally:
            await self._close()

    async def _close(self) -> None:
        for receiver in self._receivers.values():
            await receiver.client.aclose()
        self._receivers.clear()
        if self._session_conn is not None:
            await self._session_conn.close()
        await self._notifier.close()

    async def _tick(self) -> None:
        try:
            await self._keep_session()
            await self._settle_parked()
            await self.dispatch()
            await self._prune_when_due()
        except DATABASE_ERRORS as exc:
            self._outage.failed(exc)  # said once per outage; the poll paces the retries
            return
        except asyncpg.PostgresError as exc:
            log.warning("delivery_dispatch_failed", error=str(exc))
        self._outage.succeeded()

    async def _keep_session(self) -> None:
        """Hold the connection whose session the claims name; open a new one when it was lost (a
        session that ended, even one ended by the server, voids this worker's claims for everyone)."""
        if self._session_conn is not None and not self._session_conn.is_closed():
            try:
                await outbox.session(self._session_conn, self._worker)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("delivery_session_lost", worker=self._worker, error=str(exc))
                self._session_conn.terminate()
        self._session = None
        self._session_conn = await asyncpg.connect(self._dsn)
        self._session = await outbox.session(self._session_conn, self._worker)
        log.debug("delivery_session", worker=self._worker, pid=self._session.pid)

    async def _settle_parked(self) -> None:
        """Store the outcomes parked during an outage (their claims outlived it unless it was long)."""
        while self._parked:
            outcome = self._parked.pop(0)
            try:
                async with self._pool.acquire() as conn:
                    await outbox.settle(conn, self._worker, outcome)
            except DATABASE_ERRORS:
                self._parked.insert(0, outcome)
                raise
            log.info("alert_outcome_stored_late", alert_id=outcome.alert.id, state=outcome.state)

    async def dispatch(self) -> None:
        """Start a lane for every model with pending alerts; wake the lanes already running."""
        async with self._pool.acquire() as conn:
            model_ids = await outbox.models_with_pending(conn)
        self._lanes = {k: lane for k, lane in self._lanes.items() if not lane[0].done()}
        for model_id in model_ids:
            running = self._lanes.get(model_id)
            if running is not None:
                running[1].set()
                continue
            signal = Signal()
            task = asyncio.create_task(self._lane(model_id, signal), name=f"delivery:{model_id}")
            self._lanes[model_id] = (task, signal)

    async def _lane(self, model_id: int, signal: Signal) -> None:
        """Send one model's alerts in order until none is pending."""
        try:
            while not self._stopping and await self._step(model_id, signal):
                pass
        except Exception as exc:  # one model's failure never stops the others; dispatch restarts it
            log.warning("delivery_lane_failed", model_id=model_id, error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(LANE_ERROR_PAUSE_SECONDS)

    async def _step(self, model_id: int, signal: Signal) -> bool:
        """Send a run of the model's alerts, or wait until its head is due and its receiver admits it;
        False when nothing is pending."""
        async with self._pool.acquire() as conn:
            head = await outbox.head(conn, model_id, RESTART_GRACE_SECONDS)
        if head is None:
            return False
        receiver = self._receiver(head.url)
        now = time.monotonic()
        wait = max(head.due_in, receiver.breaker.wait(now))
        admitted = receiver.breaker.admit(now) if wait <= 0 else 0
        if not admitted:
            await signal.wait(min(max(wait, 0.01), self._config.poll_seconds))
            return True
        try:
            await self._claim_and_send(model_id, receiver, min(admitted, RUN_LENGTH))
        finally:
            receiver.breaker.probe_over()
        return True

    async def _claim_and_send(self, model_id: int, receiver: Receiver, limit: int) -> None:
        session = self._session
        if session is None:  # no session to name: claims wait for the next tick to open one
            await asyncio.sleep(self._config.poll_seconds)
            return
        lease = self._config.lease_seconds * limit
        async with self._pool.acquire() as conn:
            claim = await outbox.claim(conn, model_id, session, lease, limit, RESTART_GRACE_SECONDS)
        if not claim.alerts:  # another worker was first, or our session ended: the tick opens a new one
            self._wake.set()
            await asyncio.sleep(self._config.poll_seconds)
            return
        if claim.cut_short:
            log.warning("alert_attempts_cut_short", model_id=model_id, attempts=claim.cut_short)
        await self.send_run(receiver, claim.alerts)

    def _receiver(self, url: str) -> Receiver:
        key = origin(url)
        found = self._receivers.get(key)
        if found is None:
            client = new_client(self._config.timeout_seconds, self._config.max_concurrency)
            found = Receiver(client=client, breaker=Breaker(policy=self._config.policy))
            self._receivers[key] = found
        return found

    async def send_run(self, receiver: Receiver, alerts: Sequence[ClaimedAlert]) -> None:
        """Send a run of claimed alerts: up to `in_flight` at once, one coin's alerts one after the
        other, each settled as it ends; the first failure stops new starts. Every claim still held at
        the end is given back: alerts that never started, and any whose outcome could not be stored
        (its attempt stays open in the log and is closed as cut short when the alert is next claimed)."""
        run = Run(alerts)
        chains = [self._chain(receiver, run) for _ in range(min(self._config.in_flight, len(alerts)))]
        try:
            await asyncio.gather(*chains)
        finally:
            await asyncio.shield(self._release(alerts))  # settled alerts hold no claim: untouched

    async def _chain(self, receiver: Receiver, run: Run[ClaimedAlert]) -> None:
        """Attempt alerts of the run one after the other until none is left for this chain."""
        alert = await self._start(run.take())
        while alert is not None:
            outcome = await self._attempt_or_cut_short(receiver, alert)
            failed = verdict(outcome.attempt.status_code, refused=outcome.attempt.refused) is Verdict.FAILED
            run.finished(alert, failed=failed or self._stopping)
            following = run.take()
            alert = await asyncio.shield(self._settle(outcome, following))
            if following is not None and alert is None:  # its claim was lost: stop the run
                run.finished(following, failed=True)

    async def _start(self, alert: ClaimedAlert | None) -> ClaimedAlert | None:
        """The alert with its attempt started (the claim starts the head's), None when lost or none."""
        if alert is None or alert.attempt_id is not None:
            return alert
        try:
            async with self._pool.acquire() as conn:
                return await outbox.start(conn, self._worker, alert)
        except DATABASE_ERRORS:  # not started, not sent: its claim ends with its session
            return None

    async def _attempt_or_cut_short(self, receiver: Receiver, alert: ClaimedAlert) -> Outcome:
        """The attempt's outcome; when cancelled meanwhile, its outcome as cut short is stored first."""
        try:
            return await self._attempt(receiver, alert)
        except asyncio.CancelledError:
            cut = Attempt(url=alert.url, status_code=None, latency_ms=None, error=CUT_SHORT, excerpt=None)
            await asyncio.shield(self._settle(Outcome(alert=alert, attempt=cut, state="pending"), None))
            raise

    async def _settle(self, outcome: Outcome, following: ClaimedAlert | None) -> ClaimedAlert | None:
        """Store the outcome at once (the receiver may have it: until this commits, a worker that dies
        leaves it to be sent again); with the database away, park it until it is back."""
        try:
            async with self._pool.acquire() as conn:
                started = await outbox.settle(conn, self._worker, outcome, following)
        except DATABASE_ERRORS as exc:
            self._parked.append(outcome)
            log.warning(
                "alert_outcome_parked", alert_id=outcome.alert.id, error=f"{type(exc).__name__}: {exc}"
            )
            started = None
        _log_attempt(outcome)
        return started

    async def _release(self, alerts: Sequence[ClaimedAlert]) -> None:
        if not alerts:
            return
        try:
            async with self._pool.acquire() as conn:
                await outbox.release(conn, alerts, self._worker)
        except DATABASE_ERRORS:  # the claims end with the session (or after the restart's grace)
            pass

    async def _attempt(self, receiver: Receiver, alert: ClaimedAlert) -> Outcome:
        """One attempt at a claimed alert, judged: delivered, pending again after a delay, or dead."""
        request_headers = headers(alert.body, alert.key, alert.secret, int(time.time()))
        async with self._slots:
            attempt = await post_webhook(
                receiver.client,
                alert.url,
                alert.body,
                request_headers,
                allow_private=self._config.allow_private,
            )
        judged = verdict(attempt.status_code, refused=attempt.refused)
        if judged is Verdict.DELIVERED:
            await self._answered(receiver, alert.url)
            return Outcome(alert=alert, attempt=attempt, state="delivered")
        if judged is Verdict.REFUSED:
            if attempt.status_code is not None:  # the receiver answered: it is up
                await self._answered(receiver, alert.url)
            return Outcome(alert=alert, attempt=attempt, state="dead")
        delay = receiver.breaker.failed(time.monotonic(), self._random.random())
        dead = self._config.policy.gives_up(age_seconds=alert.age_seconds)
        return Outcome(alert=alert, attempt=attempt, state="dead" if dead else "pending", retry_in=delay)

    async def _answered(self, receiver: Receiver, url: str) -> None:
        """Close the receiver's breaker; when it was open, the alerts of every model waiting out a
        backoff for this receiver go now rather than at their next probe."""
        if receiver.breaker.succeeded():
            log.info("webhook_receiver_back", receiver=url_prefix(url))
            async with self._pool.acquire() as conn:
                await outbox.wake_receiver(conn, url_prefix(url))

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
        for _, signal in self._lanes.values():
            signal.set()
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


def _log_attempt(outcome: Outcome) -> None:
    alert, attempt = outcome.alert, outcome.attempt
    fields = {
        "alert_id": alert.id,
        "model_id": alert.model_id,
        "attempt": alert.attempts,
        "status": attempt.status_code,
        "ms": None if attempt.latency_ms is None else round(attempt.latency_ms, 1),
    }
    if outcome.state == "delivered":
        log.debug("alert_delivered", **fields)
    elif outcome.state == "dead":
        log.warning("alert_dead", error=attempt.error, **fields)
    else:
        log.info("alert_retry_scheduled", error=attempt.error, retry_in=round(outcome.retry_in, 2), **fields)
