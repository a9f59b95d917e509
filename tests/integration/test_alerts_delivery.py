"""The webhook outbox end to end: lanes queue alerts, delivery lanes POST them to a real loopback server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from coinfleet.alerts import outbox, secrets
from coinfleet.alerts.delivery import Deliverer
from coinfleet.alerts.outbox import OutboxItem, write_outbox
from coinfleet.alerts.payload import sign
from coinfleet.alerts.sample import send_test
from coinfleet.alerts.thread import DeliveryThread
from coinfleet.config import Settings
from coinfleet.errors import WebhookRefused
from coinfleet.feed.writer import insert_metrics
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord
from coinfleet.models.settings import ModelSettings
from coinfleet.service.alerts import list_alerts
from coinfleet.service.schemas import AlertQuery
from support import Received, Receiver, count, market_rows, running, until

FAST: dict[str, Any] = {
    "poll_interval_seconds": 0.2,
    "batch_max_events": 300,
    "webhook_allow_private": True,
    "webhook_timeout_seconds": 2.0,
    "webhook_backoff_initial_seconds": 0.02,
    "webhook_backoff_max_seconds": 0.1,
    "webhook_backoff_jitter_seconds": 0.01,
    "webhook_in_flight_per_model": 1,  # strict order per model, which most tests check
}


def settings(**changes: Any) -> Settings:
    return Settings.model_validate({**FAST, **changes})


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hangs"
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def new_model(
    pool: asyncpg.Pool,
    bundle: ModelBundle,
    name: str,
    *,
    activate: bool = False,
    **changes: object,
) -> ModelRecord:
    secret = changes.pop("secret", None)  # not a setting: it has a table of its own
    async with pool.acquire() as conn:
        model = await import_bundle(
            conn,
            replace(bundle, name=name),
            settings=ModelSettings.model_validate(changes),
            activate=activate,
        )
        if isinstance(secret, str):
            await secrets.replace(conn, model.id, secret)
        return model


async def secret_of(pool: asyncpg.Pool, model: ModelRecord) -> str:
    async with pool.acquire() as conn:
        return await secrets.get(conn, model.id)


def some_rows(count: int, seed: int = 3) -> list[MetricRow]:
    rows = sorted(market_rows(coins=3, seconds=200, seed=seed), key=lambda r: r.timestamp)
    return rows[:count]


async def queue(pool: asyncpg.Pool, model: ModelRecord, url: str, rows: list[MetricRow]) -> list[str]:
    """Commit outbox rows for `rows` as a lane would; their idempotency keys in queue order."""
    items = [OutboxItem(url=url, row=r, probability=0.9, tag="alert", suppressed=None) for r in rows]
    async with pool.acquire() as conn, conn.transaction():
        await write_outbox(conn, model, items, {})
        keys = await conn.fetch(
            "SELECT idempotency_key FROM coinfleet_alerts WHERE model_id = $1 ORDER BY id", model.id
        )
    return [k["idempotency_key"] for k in keys][-len(rows) :]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 90) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def all_events_scored(supervisor: Supervisor, lanes: int, events: int) -> Callable[[], bool]:
    return lambda: len(supervisor.lanes) == lanes and all(x.stats.events == events for x in supervisor.lanes)


def delivered(pool: asyncpg.Pool, n: int, model_id: int | None = None) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await count(
            pool,
            "SELECT count(*) FROM coinfleet_alerts"
            " WHERE state = 'delivered' AND ($1::int IS NULL OR model_id = $1)",
            model_id,
        )
        return found >= n

    return check


def delivering(pool: asyncpg.Pool, dsn: str, config: Settings) -> AbstractAsyncContextManager[Deliverer]:
    return running(Deliverer(pool=pool, dsn=dsn, settings=config))


def scoring(pool: asyncpg.Pool, dsn: str, config: Settings) -> AbstractAsyncContextManager[Supervisor]:
    return running(Supervisor(pool=pool, dsn=dsn, settings=config))


def verify(secret: str, received: Received) -> bool:
    fields = dict(part.split("=", 1) for part in received.headers["x-coinfleet-signature"].split(","))
    signed = fields["t"].encode() + b"." + received.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 120


async def test_lane_alerts_arrive_signed_with_the_n8n_payload(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(
        pool,
        small_bundle,
        "signed",
        activate=True,
        min_scan_interval_seconds=0,
        webhook_url=receiver.url,
        secret="s3cret-s3cret-s3cret",
    )
    rows = market_rows(coins=4, seconds=120)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    config = settings()
    async with scoring(pool, db_dsn, config) as supervisor, delivering(pool, db_dsn, config):
        await until(all_events_scored(supervisor, 1, len(rows)))
        await eventually(delivered(pool, len(rows)))
    async with pool.acquire() as conn:
        predictions = {
            r["id"]: r
            for r in await conn.fetch("SELECT * FROM coinfleet_predictions WHERE model_id = $1", model.id)
        }
        logged = await conn.fetch("SELECT status_code, latency_ms FROM coinfleet_alert_attempts")
    assert len(predictions) == len(rows) == len(receiver.received)
    assert sorted(Counter(receiver.keys()).values()) == [1] * len(rows)
    for got in receiver.received:
        body = got.json
        assert verify("s3cret-s3cret-s3cret", got)
        assert got.headers["content-type"] == "application/json"
        assert got.key == body["idempotency_key"]
        (prediction,) = body["predictions"]
        stored = predictions[prediction["prediction_id"]]
        assert body["coin_id"] == stored["mint"]
        assert prediction["probability"] == stored["probability"]
        assert prediction["price_close"] == stored["price_close"]
        assert prediction["market_cap_close"] == stored["market_cap_close"]
        assert prediction["is_alert"] == (stored["tag"] == "alert")
        assert prediction["model"]["name"] == "signed" and prediction["model"]["id"] == model.id
        assert body["metadata"]["service"] == "coinfleet"
    assert {r["status_code"] for r in logged} == {200} and len(logged) == len(rows)
    assert all(r["latency_ms"] >= 0 for r in logged)


async def test_receiver_down_then_up_every_alert_arrives_once_in_model_order(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    first = await new_model(pool, small_bundle, "first", webhook_url=url)
    second = await new_model(pool, small_bundle, "second", webhook_url=url)
    keys_first = await queue(pool, first, url, some_rows(6))
    keys_second = await queue(pool, second, url, some_rows(6, seed=4))
    async with delivering(pool, db_dsn, settings()):
        await eventually(
            lambda: _at_least(pool, "SELECT count(DISTINCT model_id) FROM coinfleet_alert_attempts", 2)
        )
        assert await count(pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'delivered'") == 0
        receiver = Receiver(port)
        try:
            await eventually(delivered(pool, 12))
        finally:
            receiver.close()
    got = receiver.keys()
    assert Counter(got) == Counter(keys_first + keys_second)  # each key exactly once
    assert [k for k in got if k in keys_first] == keys_first
    assert [k for k in got if k in keys_second] == keys_second
    failed = await count(pool, "SELECT count(*) FROM coinfleet_alert_attempts WHERE error IS NOT NULL")
    assert failed >= 2


async def _at_least(pool: asyncpg.Pool, sql: str, n: int) -> bool:
    return await count(pool, sql) >= n


async def test_a_hanging_webhook_does_not_hold_back_another_model(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver, hanging_url: str
) -> None:
    stuck = await new_model(pool, small_bundle, "stuck", webhook_url=hanging_url)
    fine = await new_model(pool, small_bundle, "fine", webhook_url=receiver.url)
    stuck_keys = await queue(pool, stuck, hanging_url, some_rows(3))
    fine_keys = await queue(pool, fine, receiver.url, some_rows(5, seed=4))
    config = settings(webhook_timeout_seconds=30, webhook_max_concurrency=4)
    async with delivering(pool, db_dsn, config):
        await eventually(delivered(pool, 5, fine.id))
        unanswered = (
            "SELECT count(*) FROM coinfleet_alert_attempts WHERE model_id = $1 AND finished_at IS NULL"
        )
        assert await count(pool, unanswered, stuck.id) == 1  # the head's attempt, in flight
    assert receiver.keys() == fine_keys
    assert not set(stuck_keys) & set(receiver.keys())
    async with pool.acquire() as conn:
        pending = await conn.fetch(
            "SELECT state, attempts, claimed_by FROM coinfleet_alerts WHERE model_id = $1 ORDER BY id",
            stuck.id,
        )
        logged = await conn.fetch("SELECT * FROM coinfleet_alert_attempts WHERE model_id = $1", stuck.id)
    assert [(r["state"], r["attempts"], r["claimed_by"]) for r in pending] == [
        ("pending", 1, None),  # the interrupted attempt counts and is logged; its claim is released
        ("pending", 0, None),  # the run's untried alerts are given back unattempted
        ("pending", 0, None),
    ]
    (cut,) = logged
    assert cut["finished_at"] is not None and cut["status_code"] is None and "cut short" in cut["error"]


async def test_outbox_survives_a_crash_between_commit_and_delivery(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(
        pool, small_bundle, "crashy", activate=True, min_scan_interval_seconds=0, webhook_url=receiver.url
    )
    rows = market_rows(coins=3, seconds=90)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    async with scoring(pool, db_dsn, settings()) as supervisor:  # scoring only: no delivery runs
        await until(all_events_scored(supervisor, 1, len(rows)))
    assert await count(pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'pending'") == len(rows)
    ghost_conn = await asyncpg.connect(db_dsn)  # a worker claims the first alerts for an hour and dies
    ghost_session = await outbox.session(ghost_conn, "ghost-worker")
    ghost = await outbox.claim(ghost_conn, model.id, ghost_session, 3600, 2, 10.0)
    await ghost_conn.close()
    async with pool.acquire() as conn:
        queued = [
            r["idempotency_key"] for r in await conn.fetch("SELECT * FROM coinfleet_alerts ORDER BY id")
        ]
    assert len(ghost.alerts) == 2 and receiver.received == []
    async with delivering(pool, db_dsn, settings()):
        await eventually(delivered(pool, len(rows)), timeout=30)  # not after the hour's lease
    assert receiver.keys() == queued
    async with pool.acquire() as conn:
        logged = await conn.fetch(
            "SELECT attempt, status_code, error, worker FROM coinfleet_alert_attempts WHERE alert_id = $1"
            " ORDER BY id",
            ghost.alerts[0].id,
        )
    assert [(r["attempt"], r["status_code"], r["worker"]) for r in logged[:1]] == [(1, None, "ghost-worker")]
    assert "cut short" in logged[0]["error"] and logged[1]["status_code"] == 200 and len(logged) == 2


async def test_suppressed_predictions_are_sent_only_with_send_ignored_and_have_no_prediction_id(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    common: dict[str, object] = {
        "min_scan_interval_seconds": 0,
        "webhook_url": "https://n8n.example.com/webhook/x",
    }
    windows = {"ignore_bad_seconds": 30, "ignore_positive_seconds": 30, "ignore_alert_seconds": 30}
    limits = {"max_log_entries_negative": 1, "max_log_entries_positive": 1, "max_log_entries_alert": 1}
    sends = await new_model(
        pool, small_bundle, "sends", activate=True, send_ignored=True, **common, **windows
    )
    quiet = await new_model(
        pool, small_bundle, "quiet", activate=True, send_ignored=False, **common, **limits
    )
    limited = await new_model(
        pool, small_bundle, "limited", activate=True, send_ignored=True, **common, **limits
    )
    rows = market_rows(coins=3, seconds=150)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    async with scoring(pool, db_dsn, settings()) as supervisor:
        await until(all_events_scored(supervisor, 3, len(rows)))
    async with pool.acquire() as conn:
        alerts = await conn.fetch("SELECT model_id, prediction_id, suppressed, body FROM coinfleet_alerts")
        predictions = await conn.fetch("SELECT id, model_id FROM coinfleet_predictions")
    by_model: dict[int, list[asyncpg.Record]] = {}
    for alert in alerts:
        by_model.setdefault(alert["model_id"], []).append(alert)
    assert {a["suppressed"] for a in by_model[sends.id]} == {None, "ignore_window"}
    assert {a["suppressed"] for a in by_model[limited.id]} == {None, "log_limit"}
    assert all(a["suppressed"] is None for a in by_model[quiet.id])
    for alert in alerts:
        prediction_id = json.loads(alert["body"])["predictions"][0]["prediction_id"]
        assert prediction_id == alert["prediction_id"]
        assert (prediction_id is None) == (alert["suppressed"] is not None)
    stored = Counter(p["model_id"] for p in predictions)
    for model in (sends, quiet, limited):  # every stored prediction is queued (send mode all)
        assert sum(a["suppressed"] is None for a in by_model[model.id]) == stored[model.id]


async def test_a_failing_receiver_burns_no_attempts_and_alerts_die_only_by_age(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "flaky", webhook_url=receiver.url)
    keys = await queue(pool, model, receiver.url, some_rows(3))
    receiver.status = 503
    async with delivering(pool, db_dsn, settings(webhook_max_age_seconds=1.5)):
        await eventually(
            lambda: _at_least(pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'dead'", 3)
        )
        async with pool.acquire() as conn:
            dead = (await list_alerts(conn, AlertQuery(model=model.name, state="dead"))).items
            logged = await conn.fetch("SELECT * FROM coinfleet_alert_attempts ORDER BY id")
            by_alert = Counter(r["alert_id"] for r in logged)
            assert [a.idempotency_key for a in reversed(dead)] == keys
            # the head probed the receiver until it was too old; the others waited, then died at one attempt
            assert by_alert[dead[-1].id] > 3 and by_alert[dead[1].id] == by_alert[dead[0].id] == 1
            assert all(
                r["error"] == "HTTP 503" and r["response_excerpt"] == '{"accepted": true}' for r in logged
            )
            receiver.status = 200
            assert await outbox.retry_dead(conn, model, None) == 3
        await eventually(delivered(pool, 3))
    first, second, third = keys
    got = receiver.keys()
    assert got[:-3] == [first] * (len(got) - 5) + [second, third]  # nothing overtook the failing head
    assert got[-3:] == keys


async def test_a_permanent_refusal_kills_only_that_alert_and_the_lane_goes_on(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    picky = PickyReceiver()
    try:
        model = await new_model(pool, small_bundle, "picky", webhook_url=picky.url)
        keys = await queue(pool, model, picky.url, some_rows(3))
        picky.refuse = keys[1]
        async with delivering(pool, db_dsn, settings()):
            await eventually(delivered(pool, 2))
        async with pool.acquire() as conn:
            states = [
                (a.idempotency_key, a.state, a.last_status)
                for a in (await list_alerts(conn, AlertQuery())).items
            ]
        assert states[::-1] == [
            (keys[0], "delivered", 200),
            (keys[1], "dead", 410),
            (keys[2], "delivered", 200),
        ]
        assert picky.keys() == keys
    finally:
        picky.close()


class PickyReceiver(Receiver):
    """Answers 410 Gone to one idempotency key, 200 to the rest."""

    refuse: str | None = None

    def answer(self, path: str) -> tuple[int, str | None]:
        with self._lock:
            last = self.received[-1].key
        return (410 if last == self.refuse else 200), None


async def test_a_receiver_outage_pauses_every_model_in_order_and_kills_nothing(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    models = [await new_model(pool, small_bundle, f"m{i}", webhook_url=url) for i in range(3)]
    keys = {m.id: await queue(pool, m, url, some_rows(8, seed=i)) for i, m in enumerate(models)}
    config = settings(webhook_backoff_initial_seconds=0.05, webhook_backoff_max_seconds=0.4)
    async with delivering(pool, db_dsn, config):
        await eventually(
            lambda: _at_least(
                pool, "SELECT count(*) FROM coinfleet_alert_attempts WHERE finished_at IS NOT NULL", 15
            )
        )
        async with pool.acquire() as conn:
            tried = await conn.fetch("SELECT DISTINCT alert_id FROM coinfleet_alert_attempts")
            heads = await conn.fetch("SELECT min(id) AS id FROM coinfleet_alerts GROUP BY model_id")
        assert {r["alert_id"] for r in tried} <= {r["id"] for r in heads}  # only heads probe
        receiver = Receiver(port)
        try:
            await eventually(delivered(pool, 24))
        finally:
            receiver.close()
    got = receiver.keys()
    assert Counter(got) == Counter(k for ks in keys.values() for k in ks)  # each exactly once
    for model_keys in keys.values():
        assert [k for k in got if k in model_keys] == model_keys
    assert await count(pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'dead'") == 0


async def test_a_receiver_back_wakes_every_model_waiting_out_a_backoff_for_it(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    port = free_port()
    url_a, url_b = f"http://127.0.0.1:{port}/webhook/a", f"http://127.0.0.1:{port}/webhook/b"
    first = await new_model(pool, small_bundle, "first", webhook_url=url_a)
    second = await new_model(pool, small_bundle, "second", webhook_url=url_b)
    await queue(pool, first, url_a, some_rows(2))
    second_keys = await queue(pool, second, url_b, some_rows(2, seed=4))
    async with delivering(pool, db_dsn, settings()):
        failed = "SELECT count(DISTINCT model_id) FROM coinfleet_alert_attempts WHERE finished_at IS NOT NULL"
        await eventually(lambda: _at_least(pool, failed, 2))
        async with pool.acquire() as conn:  # the second model backed off for an hour (say, another worker)
            await conn.execute(
                "UPDATE coinfleet_alerts SET next_attempt_at = now() + interval '1 hour' WHERE model_id = $1",
                second.id,
            )
        receiver = Receiver(port)
        try:
            await eventually(delivered(pool, 4))  # the first model's probe brings the second along
        finally:
            receiver.close()
    got = receiver.keys()
    assert [k for k in got if k in second_keys] == second_keys


async def test_alerts_of_a_model_share_one_kept_alive_connection(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "chatty", webhook_url=receiver.url)
    keys = await queue(pool, model, receiver.url, some_rows(40))
    async with delivering(pool, db_dsn, settings()):
        await eventually(delivered(pool, 40))
    assert receiver.keys() == keys
    assert len({r.client_port for r in receiver.received}) == 1


class Concurrent(Receiver):
    """Counts requests in flight at once (each is held a little)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.most = 0

    def answer(self, path: str) -> tuple[int, str | None]:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)
        with self._lock:
            self.now -= 1
        return 200, None


async def test_several_requests_per_model_in_flight_never_two_of_one_coin_and_each_coin_in_order(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    server = Concurrent()
    try:
        model = await new_model(pool, small_bundle, "parallel", webhook_url=server.url)
        rows = sorted(market_rows(coins=6, seconds=120, seed=5), key=lambda r: r.timestamp)[:60]
        keys = await queue(pool, model, server.url, rows)
        async with delivering(pool, db_dsn, settings(webhook_in_flight_per_model=4)):
            await eventually(delivered(pool, len(rows)))
        coin_of = dict(zip(keys, (r.mint for r in rows), strict=True))
        got = server.keys()
        assert Counter(got) == Counter(keys)
        for coin in {r.mint for r in rows}:
            assert [k for k in got if coin_of[k] == coin] == [k for k in keys if coin_of[k] == coin]
        assert 1 < server.most <= 4
        assert len({r.client_port for r in server.received}) <= 4  # kept alive, one per request in flight
    finally:
        server.close()


async def test_private_targets_are_refused_at_send_time_when_not_allowed(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    model = await new_model(pool, small_bundle, "inward", webhook_url=receiver.url)
    await queue(pool, model, receiver.url, some_rows(1))
    await queue(pool, model, by_name, some_rows(2)[1:])
    async with delivering(pool, db_dsn, settings(webhook_allow_private=False)):
        await eventually(
            lambda: _at_least(pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'dead'", 2)
        )
    async with pool.acquire() as conn:
        errors = [r["error"] for r in await conn.fetch("SELECT error FROM coinfleet_alert_attempts")]
    assert receiver.received == []
    assert len(errors) == 2 and all("loopback" in e for e in errors)


class Redirecting(Receiver):
    """Redirects POSTs to /old to `location`, answers 200 elsewhere."""

    def answer(self, path: str) -> tuple[int, str | None]:
        return (307, self.location) if path == "/old" else (200, None)

    def at(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


async def test_redirects_take_the_signed_body_only_to_the_same_host_and_port(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    same = Redirecting()
    renamed = Redirecting()
    elsewhere = Redirecting()
    try:
        same.location = "/webhook/n8n"  # same host and port: followed
        renamed.location = renamed.at("/webhook/n8n").replace("127.0.0.1", "localhost")  # another host name
        elsewhere.location = receiver.url  # another port
        good = await new_model(pool, small_bundle, "hops", webhook_url=same.at("/old"))
        good_keys = await queue(pool, good, same.at("/old"), some_rows(1))
        for name, hop in (("renamed", renamed), ("elsewhere", elsewhere)):
            model = await new_model(pool, small_bundle, name, webhook_url=hop.at("/old"))
            await queue(pool, model, hop.at("/old"), some_rows(1))
        async with delivering(pool, db_dsn, settings()):
            await eventually(delivered(pool, 1, good.id))
            await eventually(
                lambda: _at_least(pool, "SELECT count(DISTINCT model_id) FROM coinfleet_alert_attempts", 3)
            )
        assert [(r.path, r.key) for r in same.received] == [
            ("/old", good_keys[0]),
            ("/webhook/n8n", good_keys[0]),
        ]
        assert {r.path for r in renamed.received} == {"/old"}  # never at the "other host"
        assert receiver.received == []
        async with pool.acquire() as conn:
            refused = {
                a.model_name: a
                for a in (await list_alerts(conn, AlertQuery())).items
                if a.model_name != "hops"
            }
        assert {a.state for a in refused.values()} == {"pending"}  # a failing receiver: it waits
        assert "another host" in (refused["renamed"].last_error or "")
        assert "another port" in (refused["elsewhere"].last_error or "")
    finally:
        for server in (same, renamed, elsewhere):
            server.close()


async def test_delivery_on_its_own_thread_stores_answers_while_the_serving_loop_is_busy(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "threaded", webhook_url=receiver.url)
    async with running(DeliveryThread(dsn=db_dsn, settings=settings())):
        keys = await queue(pool, model, receiver.url, some_rows(3))
        # the serving loop stands still (as while a lane computes features inline); one request per
        # model is in flight, so the third request means the first two answers were stored meanwhile
        deadline = time.monotonic() + 60
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # noqa: ASYNC251 -- blocking the loop on purpose
        assert receiver.keys() == keys
        await eventually(delivered(pool, 3, model.id))


async def test_several_workers_deliver_each_alert_once_in_order(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "shared", webhook_url=receiver.url)
    keys = await queue(pool, model, receiver.url, some_rows(20))
    async with delivering(pool, db_dsn, settings()), delivering(pool, db_dsn, settings()):
        await eventually(delivered(pool, 20))
    assert receiver.keys() == keys


async def test_old_attempt_log_rows_and_delivered_alerts_are_pruned(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "pruned", webhook_url=receiver.url)
    await queue(pool, model, receiver.url, some_rows(3))
    async with delivering(pool, db_dsn, settings()):
        await eventually(delivered(pool, 3))
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE coinfleet_alert_attempts SET attempted_at = now() - interval '30 days'"
            " WHERE alert_id = (SELECT min(id) FROM coinfleet_alerts)"
        )
        await conn.execute(
            "UPDATE coinfleet_alerts SET delivered_at = now() - interval '30 days'"
            " WHERE id = (SELECT max(id) FROM coinfleet_alerts)"
        )
        assert await outbox.prune(conn, 14 * 86_400) == 2  # one old attempt, one old delivered alert
    assert await count(pool, "SELECT count(*) FROM coinfleet_alerts") == 2
    assert await count(pool, "SELECT count(*) FROM coinfleet_alert_attempts") == 1


async def test_send_test_posts_one_signed_sample_and_the_guard_applies(
    pool: asyncpg.Pool, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "tester")
    secret = await secret_of(pool, model)
    attempt = await send_test(settings(), receiver.url, model, secret)
    assert attempt.ok and attempt.status_code == 200
    (got,) = receiver.received
    assert verify(secret, got) and got.json["predictions"][0]["model"]["name"] == "tester"
    with pytest.raises(WebhookRefused, match="loopback"):
        await send_test(settings(webhook_allow_private=False), receiver.url, model, secret)
    assert len(receiver.received) == 1


@dataclass(frozen=True, kw_only=True)
class Ran:
    exit_code: int
    stdout: str
    output: str  #: stdout and stderr


async def cli(args: list[str], env: dict[str, str], stdin: bytes = b"") -> Ran:
    """Run a `coinfleet` command in its own process, as an operator would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coinfleet",
        *args,
        env={**os.environ, "COLUMNS": "200", **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return Ran(exit_code=process.returncode, stdout=out.decode(), output=out.decode() + err.decode())


async def test_cli_lists_retries_and_tests_webhooks(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    await new_model(pool, small_bundle, "cli", webhook_url=receiver.url)
    await queue(pool, await new_model(pool, small_bundle, "other"), receiver.url, some_rows(1))
    model = await new_model(pool, small_bundle, "cli2", webhook_url=receiver.url)
    await queue(pool, model, receiver.url, some_rows(2))
    async with pool.acquire() as conn:
        dead_id = await conn.fetchval(
            "UPDATE coinfleet_alerts SET state = 'dead' WHERE id = (SELECT min(id) FROM coinfleet_alerts"
            " WHERE model_id = $1) RETURNING id",
            model.id,
        )
    env = {
        "DATABASE_URL": db_dsn,
        "COINFLEET_WEBHOOK_ALLOW_PRIVATE": "true",
        "COINFLEET_LOG_LEVEL": "warning",
    }

    listed = await cli(["alerts", "list", "--model", "cli2", "--state", "dead", "--json"], env)
    assert listed.exit_code == 0, listed.output
    assert [row["id"] for row in json.loads(listed.stdout)] == [dead_id]
    everything = await cli(["alerts", "list"], env)
    assert everything.exit_code == 0 and "cli2" in everything.stdout

    retried = await cli(["alerts", "retry", "--model", "cli2", "--dead"], env)
    assert retried.exit_code == 0 and "1 alert(s) queued again" in retried.stdout
    again = await cli(["alerts", "retry", str(dead_id)], env)
    assert again.exit_code == 1 and "not dead" in again.stdout
    assert (await cli(["alerts", "retry"], env)).exit_code != 0

    piped = await cli(["alerts", "secret", "cli", "--from-stdin"], env, stdin=b"c1i-from-stdin-0123456789\n")
    assert piped.exit_code == 0, piped.output
    tested = await cli(["alerts", "test-webhook", receiver.url, "--model", "cli", "--json"], env)
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["status_code"] == 200
    (got,) = receiver.received
    assert verify("c1i-from-stdin-0123456789", got) and got.json["predictions"][0]["model"]["name"] == "cli"
    assert "c1i-from-stdin" not in (await cli(["models", "show", "cli", "--json"], env)).output

    refused = await cli(
        ["alerts", "test-webhook", receiver.url], {**env, "COINFLEET_WEBHOOK_ALLOW_PRIVATE": "false"}
    )
    assert refused.exit_code == 1 and "loopback" in refused.output
    assert len(receiver.received) == 1


async def test_models_without_their_own_url_use_the_global_default(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    await new_model(pool, small_bundle, "fallback", activate=True, min_scan_interval_seconds=0)
    await new_model(
        pool, small_bundle, "muted", activate=True, min_scan_interval_seconds=0, webhook_enabled=False
    )
    rows = market_rows(coins=2, seconds=60)
    async with pool.acquire() as conn:
        await insert_metrics(conn, rows)
    config = settings(default_webhook_url=receiver.url)
    async with scoring(pool, db_dsn, config) as supervisor, delivering(pool, db_dsn, config):
        await until(all_events_scored(supervisor, 2, len(rows)))
        await eventually(delivered(pool, len(rows)))
    names = Counter(r.json["predictions"][0]["model"]["name"] for r in receiver.received)
    assert names == {"fallback": len(rows)}


async def test_cli_sets_secrets_from_env_file_and_stdin_never_from_argv(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, tmp_path: Path
) -> None:
    model = await new_model(pool, small_bundle, "keyed")
    generated = await secret_of(pool, model)
    env = {"DATABASE_URL": db_dsn, "COINFLEET_LOG_LEVEL": "warning"}
    assert len(generated) >= 32

    shown = await cli(["alerts", "secret", "keyed", "--show"], env)
    assert shown.exit_code == 0 and shown.stdout.strip() == generated

    argv = await cli(["models", "set", "keyed", "webhook_secret=typed-on-the-command-line"], env)
    assert argv.exit_code != 0 and "--from-file" in argv.output
    assert "typed-on-the-command-line" not in argv.output
    assert await secret_of(pool, model) == generated

    path = tmp_path / "secret"
    path.write_text("from-a-file-0123456789\n")
    assert (await cli(["alerts", "secret", "keyed", "--from-file", str(path)], env)).exit_code == 0
    assert await secret_of(pool, model) == "from-a-file-0123456789"

    from_env = await cli(
        ["alerts", "secret", "keyed", "--from-env", "HOOK_SECRET"],
        {**env, "HOOK_SECRET": "env-0123456789abcdef"},
    )
    assert from_env.exit_code == 0 and await secret_of(pool, model) == "env-0123456789abcdef"

    short = await cli(["alerts", "secret", "keyed", "--from-stdin"], env, stdin=b"short\n")
    assert short.exit_code != 0 and "16 characters" in short.output
    assert await secret_of(pool, model) == "env-0123456789abcdef"

    rotated = await cli(["alerts", "secret", "keyed", "--generate"], env)
    assert rotated.exit_code == 0 and await secret_of(pool, model) == rotated.stdout.splitlines()[0]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_receiver(secret: str) -> dict[str, Any]:
    """The receiver code from docs/webhooks.md, run as written (only its secret replaced)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text("utf-8"), flags=re.DOTALL)
    (code,) = [b for b in blocks if "def handle(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # the documented code, nothing else
    namespace["SECRET"] = secret.encode()
    return namespace


class ActedOn(set[str]):
    """The documented receiver's handled keys, counting how often each was added (acted on)."""

    def __init__(self) -> None:
        super().__init__()
        self.acted: Counter[str] = Counter()

    def add(self, key: str) -> None:
        self.acted[key] += 1
        super().add(key)


class DocumentedReceiver(Receiver):
    """A real HTTP server answering what the documented `handle` says."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.code = documented_receiver(secret)
        self.code["handled_keys"] = self.handled = ActedOn()
        self.statuses: list[int] = []

    def answer(self, path: str) -> tuple[int, str | None]:
        with self._lock:
            got = self.received[-1]
            status: int = self.code["handle"](httpx.Headers(got.headers), got.body)
            self.statuses.append(status)
        return status, None


async def test_the_documented_receiver_acts_once_per_key_and_rejects_stale_and_forged_requests(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    secret = "documented-receiver-secret-0123"
    server = DocumentedReceiver(secret)
    try:
        model = await new_model(pool, small_bundle, "documented", webhook_url=server.url, secret=secret)
        keys = await queue(pool, model, server.url, some_rows(3))
        async with delivering(pool, db_dsn, settings()):
            await eventually(delivered(pool, 3))
        assert server.statuses == [200, 200, 200] and server.handled.acted == Counter(keys)
        assert [r.headers["x-coinfleet-attempt"] for r in server.received] == ["1", "1", "1"]
        captured = server.received[0]
        body, sent_headers = captured.body, dict(captured.headers)

        async def post(headers: dict[str, str], content: bytes = body) -> int:
            async with httpx.AsyncClient() as client:
                return (await client.post(server.url, content=content, headers=headers)).status_code

        # the very request again (a re-send within the same second, or a replay): acknowledged, not acted on
        assert await post({**sent_headers, "x-coinfleet-attempt": "2"}) == 200
        assert await post({**sent_headers, "idempotency-key": "cf-made-up"}) == 200  # the body's key counts
        assert server.handled.acted == Counter(keys)
        stale = sign(body, secret, int(time.time()) - 301)  # what coinfleet signed five minutes ago
        assert await post({**sent_headers, "x-coinfleet-signature": stale}) == 401
        forged = sign(body, "not-the-secret-0123456789", int(time.time()))
        assert await post({**sent_headers, "x-coinfleet-signature": forged}) == 401
        assert await post(sent_headers, body.replace(b"coinfleet", b"coinfleeT")) == 401
        assert await post({k: v for k, v in sent_headers.items() if k != "x-coinfleet-signature"}) == 401
        retry = sign(
            body, secret, int(time.time()) + 1
        )  # coinfleet's own retry: a later second, the same key
        assert await post({**sent_headers, "x-coinfleet-signature": retry}) == 200
        assert server.handled.acted == Counter(keys)  # each acted on once
    finally:
        server.close()


class HandledThenHeld(DocumentedReceiver):
    """The documented receiver, holding its answer after handling a request while `release` is clear."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.release = threading.Event()
        self.release.set()

    def answer(self, path: str) -> tuple[int, str | None]:
        answered = super().answer(path)
        self.release.wait(30)
        return answered


async def test_a_re_send_after_a_worker_died_before_storing_the_answer_is_acknowledged_and_acted_on_once(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle
) -> None:
    secret = "documented-receiver-secret-0123"
    server = HandledThenHeld(secret)
    try:
        model = await new_model(pool, small_bundle, "resent", webhook_url=server.url, secret=secret)
        keys = await queue(pool, model, server.url, some_rows(2))
        server.release.clear()  # the first alert is handled, its answer waits: the worker dies before it
        worker = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER_SCRIPT, db_dsn)
        try:
            await until(lambda: len(server.statuses) == 1, timeout=60)
        finally:
            worker.kill()  # SIGKILL between the receiver handling the alert and the worker storing that
            await worker.wait()
        server.release.set()
        async with delivering(pool, db_dsn, settings(webhook_timeout_seconds=30)):
            await eventually(delivered(pool, 2), timeout=60)
    finally:
        server.close()
    assert [r.key for r in server.received] == [keys[0], *keys]  # the first alert sent again, then in order
    assert [r.headers["x-coinfleet-attempt"] for r in server.received] == ["1", "2", "1"]
    assert server.statuses == [200, 200, 200]  # the re-send acknowledged, not refused
    assert server.handled.acted == Counter(keys)  # and not acted on again


WORKER_SCRIPT = """
import asyncio, sys
from coinfleet.alerts.delivery import Deliverer
from coinfleet.config import Settings
from coinfleet.db.database import create_pool

async def main() -> None:
    pool = await create_pool(sys.argv[1], max_size=4)
    settings = Settings(webhook_allow_private=True, poll_interval_seconds=0.2, webhook_timeout_seconds=30)
    await Deliverer(pool=pool, dsn=sys.argv[1], settings=settings).run()

asyncio.run(main())
"""


async def test_a_worker_killed_mid_request_has_its_claim_taken_back_at_once_and_the_attempt_logged(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, receiver: Receiver
) -> None:
    model = await new_model(pool, small_bundle, "killed", webhook_url=receiver.url)
    keys = await queue(pool, model, receiver.url, some_rows(3))
    receiver.hold.clear()  # the first request waits for an answer
    worker = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER_SCRIPT, db_dsn)
    try:
        await until(lambda: len(receiver.received) == 1, timeout=60)
    finally:
        worker.kill()  # SIGKILL: no cleanup of any kind
        await worker.wait()
    receiver.hold.set()
    lease = 4 * 2 * 30  # what the dead worker's claim would hold without its session
    async with delivering(pool, db_dsn, settings(webhook_timeout_seconds=30)):
        await eventually(delivered(pool, 3), timeout=lease / 4)
    assert receiver.keys() == [keys[0], *keys]  # the request cut short is sent again, then in order
    async with pool.acquire() as conn:
        logged = await conn.fetch(
            "SELECT a.idempotency_key, t.status_code, t.error, t.finished_at FROM coinfleet_alert_attempts t"
            " JOIN coinfleet_alerts a ON a.id = t.alert_id ORDER BY t.id"
        )
    first = [r for r in logged if r["idempotency_key"] == keys[0]]
    assert len(first) == 2 and first[0]["status_code"] is None and first[1]["status_code"] == 200
    assert "session ended" in first[0]["error"] and first[0]["finished_at"] is not None
    assert [r["status_code"] for r in logged if r["idempotency_key"] != keys[0]] == [200, 200]
    assert all(r["finished_at"] is not None for r in logged)


def test_a_claimed_alert_never_shows_its_secret() -> None:
    alert = outbox.ClaimedAlert(
        id=1,
        model_id=1,
        mint="m",
        url="http://x",
        key="k",
        body=b"{}",
        attempts=1,
        attempt_id=1,
        age_seconds=0,
        secret="do-not-print-me-0123456789",
    )
    assert "do-not-print-me" not in repr(alert) and "do-not-print-me" not in str(alert)


async def test_the_secret_never_reaches_the_log_or_the_receiver_in_clear(
    pool: asyncpg.Pool, db_dsn: str, small_bundle: ModelBundle, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "log-me-never-0123456789abcdef"
    server = Receiver()
    try:
        model = await new_model(pool, small_bundle, "quiet-secret", webhook_url=server.url, secret=secret)
        await queue(pool, model, server.url, some_rows(3))
        server.status = 503  # failures log more than deliveries
        async with delivering(pool, db_dsn, settings(webhook_max_age_seconds=0.5)):
            await eventually(
                lambda: _at_least(pool, "SELECT count(*) FROM coinfleet_alerts WHERE state = 'dead'", 3)
            )
    finally:
        server.close()
    out, err = capfd.readouterr()
    assert "alert_dead" in out + err  # the log was captured
    assert secret not in out + err
    assert all(secret.encode() not in r.body and secret not in str(r.headers) for r in server.received)
