"""/health, /ready, /metrics, the OpenAPI document and the token rules, over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from api_support import running_api
from coinfleet.api.process import LanesEndpoint, publish_waiting
from coinfleet.db import embedded
from coinfleet.db.database import fresh_database
from coinfleet.db.outage import Outage


async def test_health_and_docs_answer_without_token(db_dsn: str) -> None:
    async with running_api(db_dsn, reads_need_token=True) as api:
        assert (await api.anonymous.get("/health")).json() == {"status": "ok"}
        schema = (await api.anonymous.get("/api/openapi.json")).json()
        assert schema["info"]["title"] == "coinfleet"
        assert "/api/stream" in schema["paths"]
        assert (await api.anonymous.get("/api/docs")).status_code == 200


async def test_ready_reports_each_check(db_dsn: str) -> None:
    started = False

    async def lanes_started() -> bool:
        return started

    async with running_api(db_dsn, lanes_started=lanes_started) as api:
        answer = await api.anonymous.get("/ready")
        assert answer.status_code == 503
        assert answer.json()["lanes"] == "starting"
        assert answer.json()["database"] is True
        started = True
        answer = await api.anonymous.get("/ready")
        assert answer.status_code == 200
        assert answer.json() == answer.json() | {
            "ready": True,
            "migrations_current": True,
            "lanes": "started",
        }


async def test_ready_fails_while_a_loop_waits_for_the_database(db_dsn: str) -> None:
    outage = Outage("lane:test-model")
    async with running_api(db_dsn) as api:
        outage.failed(ConnectionRefusedError("connection refused"))
        try:
            answer = await api.anonymous.get("/ready")
        finally:
            outage.succeeded()
        assert answer.status_code == 503
        assert "lane:test-model" in answer.json()["waiting_for_database"]
        assert "waiting for the database" in answer.json()["message"]
        answer = await api.anonymous.get("/ready")
        assert answer.status_code == 200
        assert answer.json()["waiting_for_database"] == {}


async def test_the_serving_process_s_waiting_loops_reach_the_http_process(db_dsn: str) -> None:
    """`serve` answers HTTP from a child process: the lanes' loops that wait for the database are passed
    to it through the serving process's loopback metrics endpoint."""
    httpd, _ = start_http_server(0, addr="127.0.0.1")
    lanes = LanesEndpoint(f"http://127.0.0.1:{httpd.server_port}/metrics")
    outage = Outage("lane:far-away")
    try:
        outage.failed(ConnectionRefusedError("connection refused"))
        publish_waiting()
        assert await lanes.waiting() == {"lane:far-away": "ConnectionRefusedError: connection refused"}
        outage.succeeded()
        publish_waiting()
        assert await lanes.waiting() == {}
    finally:
        outage.succeeded()
        await lanes.close()
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.timeout(120)
async def test_the_api_comes_up_during_an_outage_and_is_ready_once_the_database_is_back(
    own_server: tuple[Path, str],
) -> None:
    pgdata, server_dsn = own_server
    dsn = await fresh_database(server_dsn, "api_outage")
    await asyncio.to_thread(embedded.stop, pgdata)
    async with asyncio.timeout(60), running_api(dsn) as api:  # it listens although nothing answers
        assert (await api.anonymous.get("/health")).status_code == 200
        answer = await api.anonymous.get("/ready")
        assert answer.status_code == 503 and answer.json()["database"] is False
        assert "stream" in answer.json()["waiting_for_database"]  # the live stream's LISTEN
        await asyncio.to_thread(embedded.start, pgdata)
        while (answer := await api.anonymous.get("/ready")).status_code != 200:
            await asyncio.sleep(0.2)
        assert answer.json()["waiting_for_database"] == {}


async def test_ready_fails_when_a_migration_is_missing(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "DELETE FROM coinfleet_migrations WHERE version = (SELECT max(version) FROM coinfleet_migrations)"
        )
    finally:
        await conn.close()
    async with running_api(db_dsn) as api:
        answer = await api.anonymous.get("/ready")
        assert answer.status_code == 503
        assert answer.json()["migrations_current"] is False
        assert answer.json()["pending_migrations"]


async def test_reads_need_the_token_beyond_loopback(db_dsn: str) -> None:
    async with running_api(db_dsn, reads_need_token=True) as api:
        refused = await api.anonymous.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await api.anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "wrong" in wrong.json()["message"]
        assert (await api.client.get("/metrics")).status_code == 200


async def test_metrics_parse_with_a_series_per_model(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        for name in ("alpha", "beta"):
            await conn.execute(
                "INSERT INTO coinfleet_models (name, algorithm, format, artifact, artifact_sha256, features,"
                " target, status) VALUES ($1, 'x', 'onnx', '\\x00', 'h', '{}', '{}', 'active')",
                name,
            )
    finally:
        await conn.close()
    async with running_api(db_dsn) as api:
        answer = await api.anonymous.get("/metrics")
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    lag = families["coinfleet_model_lag_events"]
    assert {s.labels["model"] for s in lag.samples} == {"alpha", "beta"}
    status = families["coinfleet_model_status"]
    assert {(s.labels["model"], s.value) for s in status.samples if s.labels["status"] == "active"} == {
        ("alpha", 1.0),
        ("beta", 1.0),
    }
