"""One model's delivery lane: claim a run from the head of its queue, send it, record each outcome.

A lane sends its model's alerts in outbox order over kept-alive connections, several at once but never
two of one coin, so a coin's alert never goes before every older alert of that coin is delivered or
dead. A paused receiver (its breaker open) pauses the lane; requests of all lanes share the slots.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from coinfleet.alerts import outbox
from coinfleet.alerts.claims import RESTART_GRACE_SECONDS, Claims
from coinfleet.alerts.config import DeliveryConfig
from coinfleet.alerts.outbox import Attempt, ClaimedAlert, Outcome
from coinfleet.alerts.payload import headers
from coinfleet.alerts.receivers import Receiver, Receivers
from coinfleet.alerts.rules import Verdict, verdict
from coinfleet.alerts.runs import Run
from coinfleet.alerts.transport import post_webhook, url_prefix
from coinfleet.events.notifier import Signal

log = structlog.get_logger(__name__)
LANE_ERROR_PAUSE_SECONDS = 1.0
RUN_LENGTH = 32  #: most alerts one claim takes from the head of a model's queue
CUT_SHORT = "cut short: the worker stopped before the answer came (the request may have reached the receiver)"


@dataclass(frozen=True, kw_only=True, slots=True)
class LaneContext:
    """What every lane of one deliverer shares."""

    pool: asyncpg.Pool
    config: DeliveryConfig
    claims: Claims
    receivers: Receivers
    slots: asyncio.Semaphore  #: requests in flight over all lanes
    random: random.Random
    stopping: Callable[[], bool]  #: whether the deliverer is stopping: start nothing new
    nudge: Callable[[], None]  #: wake the deliverer's loop (to open a session that was lost)


class Lane:
    """Sends one model's alerts in order until none is pending (or the deliverer stops)."""

    def __init__(self, model_id: int, context: LaneContext) -> None:
        self._model_id = model_id
        self._context = context
        self._config = context.config
        self._claims = context.claims
        self.signal = Signal()  #: wakes the lane (a new alert, a receiver back, stopping)
        self._back: set[str] = set()  #: receivers found back, to announce once the answer is stored

    async def run(self) -> None:
        try:
            while not self._context.stopping() and await self._step():
                pass
        except Exception as exc:  # one model's failure never stops the others; dispatch restarts it
            log.warning("delivery_lane_failed", model_id=self._model_id, error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(LANE_ERROR_PAUSE_SECONDS)

    async def _step(self) -> bool:
        """Send a run of the model's alerts, or wait until its head is due and its receiver admits it;
        False when nothing is pending."""
        async with self._context.pool.acquire() as conn:
            head = await outbox.head(conn, self._model_id, RESTART_GRACE_SECONDS)
        if head is None:
            return False
        receiver = self._context.receivers.of(head.url)
        now = time.monotonic()
        wait = max(head.due_in, receiver.breaker.wait(now))
        admitted = receiver.breaker.admit(now) if wait <= 0 else 0
        if not admitted:
            await self.signal.wait(min(max(wait, 0.01), self._config.poll_seconds))
            return True
        try:
            await self._claim_and_send(receiver, min(admitted, RUN_LENGTH))
        finally:
            receiver.breaker.probe_over()
        return True

    async def _claim_and_send(self, receiver: Receiver, limit: int) -> None:
        if not self._claims.live:  # no session to name: claims wait for the next tick to open one
            await asyncio.sleep(self._config.poll_seconds)
            return
        claim = await self._claims.claim(self._model_id, self._config.lease_seconds * limit, limit)
        if claim is None or not claim.alerts:  # another worker was first, or our session ended
            self._context.nudge()  # the tick opens a new session if it was ours
            await asyncio.sleep(self._config.poll_seconds)
            return
        if claim.cut_short:
            log.warning("alert_attempts_cut_short", model_id=self._model_id, attempts=claim.cut_short)
        await self._send_run(receiver, claim.alerts)

    async def _send_run(self, receiver: Receiver, alerts: Sequence[ClaimedAlert]) -> None:
        """Send a run of claimed alerts: up to `in_flight` at once, one coin's alerts one after the
        other, each settled as it ends; the first failure stops new starts. Every claim still held at
        the end is given back: alerts that never started, and any whose outcome could not be stored
        (its attempt stays open in the log and is closed as cut short when the alert is next claimed)."""
        run = Run(alerts)
        chains = [self._chain(receiver, run) for _ in range(min(self._config.in_flight, len(alerts)))]
        try:
            await asyncio.gather(*chains)
        finally:
            await asyncio.shield(self._claims.release(alerts))  # settled alerts hold no claim: untouched

    async def _chain(self, receiver: Receiver, run: Run[ClaimedAlert]) -> None:
        """Attempt alerts of the run one after the other until none is left for this chain."""
        alert = await self._claims.start(run.take())
        while alert is not None:
            outcome = await self._attempt_or_cut_short(receiver, alert)
            failed = verdict(outcome.attempt.status_code, refused=outcome.attempt.refused) is Verdict.FAILED
            run.finished(alert, failed=failed or self._context.stopping())
            following = run.take()
            alert = await asyncio.shield(self._settle(outcome, following))
            if following is not None and alert is None:  # its claim was lost: stop the run
                run.finished(following, failed=True)
            await self._announce_back()

    async def _attempt_or_cut_short(self, receiver: Receiver, alert: ClaimedAlert) -> Outcome:
        """The attempt's outcome; when cancelled meanwhile, its outcome as cut short is stored first."""
        try:
            return await self._attempt(receiver, alert)
        except asyncio.CancelledError:
            cut = Attempt(url=alert.url, status_code=None, latency_ms=None, error=CUT_SHORT, excerpt=None)
            await asyncio.shield(self._settle(Outcome(alert=alert, attempt=cut, state="pending"), None))
            raise

    async def _settle(self, outcome: Outcome, following: ClaimedAlert | None) -> ClaimedAlert | None:
        """Store the outcome (or park it) and start `following`: see `Claims.settle`."""
        started = await self._claims.settle(outcome, following)
        _log_attempt(outcome)
        return started

    async def _attempt(self, receiver: Receiver, alert: ClaimedAlert) -> Outcome:
        """One attempt at a claimed alert, judged: delivered, pending again after a delay, or dead."""
        request_headers = headers(
            alert.body, alert.key, alert.secret, int(time.time()), attempt=alert.attempts
        )
        async with self._context.slots:
            attempt = await post_webhook(
                receiver.client,
                alert.url,
                alert.body,
                request_headers,
                allow_private=self._config.allow_private,
            )
        judged = verdict(attempt.status_code, refused=attempt.refused)
        if judged is Verdict.DELIVERED:
            self._answered(receiver, alert.url)
            return Outcome(alert=alert, attempt=attempt, state="delivered")
        if judged is Verdict.REFUSED:
            if attempt.status_code is not None:  # the receiver answered: it is up
                self._answered(receiver, alert.url)
            return Outcome(alert=alert, attempt=attempt, state="dead")
        delay = receiver.breaker.failed(time.monotonic(), self._context.random.random())
        dead = self._config.policy.gives_up(age_seconds=alert.age_seconds)
        return Outcome(alert=alert, attempt=attempt, state="dead" if dead else "pending", retry_in=delay)

    def _answered(self, receiver: Receiver, url: str) -> None:
        """Close the receiver's breaker; when it was open, remember to announce it back once the
        answer is stored (nothing may come between an answer and its storing)."""
        if receiver.breaker.succeeded():
            self._back.add(url_prefix(url))

    async def _announce_back(self) -> None:
        """The alerts of every model waiting out a backoff for a receiver found back go now rather
        than at their next probe."""
        while self._back:
            prefix = self._back.pop()
            log.info("webhook_receiver_back", receiver=prefix)
            async with self._context.pool.acquire() as conn:
                await outbox.wake_receiver(conn, prefix)


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
