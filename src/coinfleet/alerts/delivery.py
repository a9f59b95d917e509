"""Webhook delivery: one lane per model with pending alerts, so a dead webhook only delays its own model.

A lane sends its model's alerts strictly in outbox order, one at a time: an alert waits until every
older alert of the same model is delivered or dead. Requests of all lanes share a bounded number of
slots. Workers on any number of machines may run side by side; claims are short transactions with a
lease, never a transaction held open across a request (that would hold back every lane's horizon).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import structlog

from coinfleet.alerts import outbox
from coinfleet.alerts.outbox import Attempt, ClaimedAlert
from coinfleet.alerts.payload import (
    ModelSchema,
    ModelTotals,
    Scored,
    build_payload,
    encode,
    headers,
    model_schema,
)
from coinfleet.alerts.rules import RetryPolicy
from coinfleet.alerts.ssrf import check_url
from coinfleet.config import Settings
from coinfleet.constants import ALERTS_CHANNEL, DEFAULT_ALERT_THRESHOLD
from coinfleet.errors import WebhookRefused
from coinfleet.events.feed import Notifier, Signal
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord

log = structlog.get_logger(__name__)
MAX_REDIRECTS = 3  #: redirects followed by hand, each target checked again
EXCERPT_CHARS = 500  #: response text kept per attempt
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
LANE_ERROR_PAUSE_SECONDS = 1.0
HOP_TIMEOUT_FACTOR = 2  #: one hop (DNS, connect, send, answer) may take this many timeouts in all
STOP_GRACE_SECONDS = 2.0  #: how long `stop` lets attempts in flight finish before cancelling them


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryConfig:
    """The delivery settings of one process."""

    timeout_seconds: float
    allow_private: bool
    policy: RetryPolicy
    max_concurrency: int
    poll_seconds: float
    retention_seconds: float
    prune_interval_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        """Take the webhook_* settings."""
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private,
            policy=RetryPolicy(
                max_attempts=settings.webhook_max_attempts,
                max_age_seconds=settings.webhook_max_age_seconds,
                initial_seconds=settings.webhook_backoff_initial_seconds,
                max_seconds=settings.webhook_backoff_max_seconds,
                jitter_seconds=settings.webhook_backoff_jitter_seconds,
            ),
            max_concurrency=settings.webhook_max_concurrency,
            poll_seconds=settings.poll_interval_seconds,
            retention_seconds=settings.webhook_log_retention_days * 86_400,
            prune_interval_seconds=settings.prune_interval_seconds,
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claim lasts: longer than any attempt can take, redirects included."""
        return (MAX_REDIRECTS + 1) * HOP_TIMEOUT_FACTOR * self.timeout_seconds + 5.0


def new_client(timeout_seconds: float) -> httpx.AsyncClient:
    """The HTTP client: no automatic redirects and no proxies from the environment (both bypass the guard)."""
    # No keep-alive: requests go to checked IP addresses, and a pooled TLS connection opened for one
    # host name must not carry a request meant for another name on the same address.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def post_webhook(
    client: httpx.AsyncClient, url: str, body: bytes, request_headers: dict[str, str], *, allow_private: bool
) -> Attempt:
    """POST `body` once, following up to MAX_REDIRECTS redirects by hand; never raises for the network."""
    started = time.perf_counter()
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, excerpt = await _post_once(
                client, current, body, request_headers, allow_private
            )
            if status not in REDIRECT_CODES or not location:
                return _attempt(current, started, status=status, excerpt=excerpt)
            current = str(httpx.URL(current).join(location))
        return _attempt(current, started, status=status, error=f"more than {MAX_REDIRECTS} redirects")
    except WebhookRefused as exc:
        return _attempt(current, started, error=str(exc), refused=True)
    except TimeoutError:
        return _attempt(current, started, error=f"timed out after {client.timeout.read}s")
    except httpx.HTTPError as exc:
        return _attempt(current, started, error=f"{type(exc).__name__}: {exc}")


def _attempt(
    url: str,
    started: float,
    *,
    status: int | None = None,
    excerpt: str | None = None,
    error: str | None = None,
    refused: bool = False,
) -> Attempt:
    latency_ms = (time.perf_counter() - started) * 1000
    if error is None and status is not None and not 200 <= status < 300:
        error = f"HTTP {status}"
    return Attempt(
        url=url,
        status_code=status,
        latency_ms=latency_ms,
        error=error[:EXCERPT_CHARS] if error else None,
        excerpt=excerpt,
        refused=refused,
    )


async def _post_once(
    client: httpx.AsyncClient, url: str, body: bytes, request_headers: dict[str, str], allow_private: bool
) -> tuple[int, str | None, str]:
    """One request to the checked address; (status, Location header, response excerpt)."""
    timeout = client.timeout.read or 5.0
    async with asyncio.timeout(timeout * HOP_TIMEOUT_FACTOR):  # httpx times each step, this the whole hop
        target = await check_url(url, allow_private=allow_private)
        extensions: dict[str, Any] = {"sni_hostname": target.url.host} if target.url.scheme == "https" else {}
        pinned_headers = {**request_headers, "Host": target.url.netloc.decode("ascii")}
        async with client.stream(
            "POST", target.pinned, content=body, headers=pinned_headers, extensions=extensions
        ) as response:
            return response.status_code, response.headers.get("location"), await _excerpt(response)


async def _excerpt(response: httpx.Response) -> str:
    """The start of the response text, without reading a huge body."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= EXCERPT_CHARS * 4:
            break
    return data.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


class Deliverer:
    """Delivers the outbox: wakes on NOTIFY or a slow poll, runs one lane per model with pending alerts."""

    def __init__(self, *, pool: asyncpg.Pool, dsn: str, settings: Settings) -> None:
        self._pool = pool
        self._config = DeliveryConfig.from_settings(settings)
        self._notifier = Notifier(dsn, (ALERTS_CHANNEL,))
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._slots = asyncio.Semaphore(self._config.max_concurrency)
        self._lanes: dict[int, tuple[asyncio.Task[None], Signal]] = {}
        self._wake = Signal()
        self._stopping = False
        self._random = random.Random()
        self._client: httpx.AsyncClient | None = None
        self._last_prune = float("-inf")

    def stop(self) -> None:
        """Ask `run` to finish the attempts in flight and return."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped."""
        await self._notifier.start()
        self._wake = self._notifier.subscribe(ALERTS_CHANNEL)
        try:
            async with new_client(self._config.timeout_seconds) as client:
                self._client = client
                while not self._stopping:
                    await self._tick()
                    await self._wake.wait(self._config.poll_seconds)
                await self._stop_lanes()
        finally:
            await self._notifier.close()

    async def _tick(self) -> None:
        try:
            await self.dispatch()
            await self._prune_when_due()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("delivery_dispatch_failed", error=str(exc))

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
        """Attempt the model's next alert, or wait until it is due; False when nothing is pending."""
        async with self._pool.acquire() as conn:
            alert = await outbox.claim(conn, model_id, self._worker, self._config.lease_seconds)
            wait = None if alert else await outbox.seconds_until_due(conn, model_id)
        if alert is not None:
            await self.deliver(alert)
            return True
        if wait is None:
            return False
        await signal.wait(min(max(wait, 0.01), self._config.poll_seconds))
        return True

    async def deliver(self, alert: ClaimedAlert) -> Attempt:
        """One attempt at a claimed alert, logged, with the alert settled as delivered, retry or dead."""
        assert self._client is not None, "deliver runs inside run()"
        try:
            async with self._slots:
                attempt = await post_webhook(
                    self._client,
                    alert.url,
                    alert.body,
                    headers(alert.body, alert.key, alert.secret),
                    allow_private=self._config.allow_private,
                )
        except asyncio.CancelledError:
            await asyncio.shield(self._release(alert))
            raise
        policy = self._config.policy
        dead = not attempt.ok and (
            attempt.refused or policy.gives_up(attempts=alert.attempts, age_seconds=alert.age_seconds)
        )
        retry_in = 0.0 if attempt.ok or dead else policy.delay(alert.attempts, self._random.random())
        async with self._pool.acquire() as conn:
            await outbox.settle(conn, alert, self._worker, attempt, dead=dead, retry_in=retry_in)
        _log_attempt(alert, attempt, dead=dead, retry_in=retry_in)
        return attempt

    async def _release(self, alert: ClaimedAlert) -> None:
        async with self._pool.acquire() as conn:
            await outbox.release(conn, alert, self._worker)

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self._config.prune_interval_seconds:
            return
        self._last_prune = now
        async with self._pool.acquire() as conn:
            pruned = await outbox.prune(conn, self._config.retention_seconds)
        log.debug("alert_log_pruned", rows=pruned)

    async def _stop_lanes(self) -> None:
        """Let attempts in flight finish for a short grace period, then cancel (and release) the rest."""
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


def _log_attempt(alert: ClaimedAlert, attempt: Attempt, *, dead: bool, retry_in: float) -> None:
    fields = {
        "alert_id": alert.id,
        "model_id": alert.model_id,
        "attempt": alert.attempts,
        "status": attempt.status_code,
        "ms": round(attempt.latency_ms, 1),
    }
    if attempt.ok:
        log.info("alert_delivered", **fields)
    elif dead:
        log.warning("alert_dead", error=attempt.error, **fields)
    else:
        log.info("alert_retry_scheduled", error=attempt.error, retry_in=round(retry_in, 2), **fields)


SAMPLE_MINT = "CoinfleetTestWebhook1111111111111111111111pump"


def sample_row() -> MetricRow:
    """A made-up metric row for a test payload."""
    return MetricRow(
        mint=SAMPLE_MINT,
        timestamp=datetime.now(UTC).replace(microsecond=0),
        phase_id_at_time=1,
        price_open=2.8e-08,
        price_high=3.1e-08,
        price_low=2.7e-08,
        price_close=3.0e-08,
        market_cap_close=30.0,
        volume_sol=1.5,
        buy_volume_sol=1.0,
        sell_volume_sol=0.5,
        num_buys=12,
        num_sells=4,
        unique_wallets=9,
    )


def sample_model_schema() -> ModelSchema:
    """A made-up model block for a test payload without a model."""
    return ModelSchema(
        id=0,
        active_model_id=0,
        name="webhook-test",
        model_type="test",
        target_variable=None,
        target_operator=None,
        target_value=None,
        future_minutes=5,
        price_change_percent=10,
        target_direction="up",
        features=[],
        phases=None,
        total_predictions=0,
        last_prediction_at=None,
        version=1,
    )


async def send_test(settings: Settings, url: str, model: ModelRecord | None = None) -> Attempt:
    """POST one signed sample alert to `url` (the SSRF guard applies); WebhookRefused if refused."""
    await check_url(url, allow_private=settings.webhook_allow_private)
    schema = model_schema(model, ModelTotals(total_predictions=0, last_prediction_at=None)) if model else None
    threshold = model.settings.alert_threshold if model else DEFAULT_ALERT_THRESHOLD
    scored = Scored(row=sample_row(), probability=0.93, tag="alert", suppressed=None, prediction_id=None)
    payload = build_payload(schema or sample_model_schema(), threshold, scored)
    payload = payload.model_copy(update={"idempotency_key": f"cf-test-{uuid.uuid4().hex}"})
    body = encode(payload).encode()
    secret = model.settings.webhook_secret if model else None
    async with new_client(settings.webhook_timeout_seconds) as client:
        attempt = await post_webhook(
            client,
            url,
            body,
            headers(body, payload.idempotency_key, secret),
            allow_private=settings.webhook_allow_private,
        )
    if attempt.refused:
        raise WebhookRefused(attempt.error or f"webhook URL {url!r} refused")
    return attempt
