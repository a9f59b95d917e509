"""schemathesis over the published OpenAPI schema, against a real server on real data: no 500, no answer
that its schema or its documented status codes do not allow. Examples are bounded (well under a minute)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from api_support import TOKEN
from coinfleet.api import ApiConfig, create_app
from coinfleet.api.server import serving
from coinfleet.db.database import drop_database
from coinfleet.feed.writer import insert_metrics
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.importing import import_bundle
from support import copy_template, market_rows

#: examples per operation and generation mode (valid data, then invalid data)
EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: operations left out: the live stream never ends, and a test send would reach out to generated hosts
EXCLUDED_PATHS = ("/api/stream", "/api/alerts/test")


class ServerThread:
    """The app served by uvicorn on its own event loop in a thread, until `stop`."""

    def __init__(self, dsn: str) -> None:
        self.base_url = ""
        self._started = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(dsn),))
        self._thread.start()
        if not self._started.wait(60):
            raise RuntimeError("the API server did not start")

    async def _serve(self, dsn: str) -> None:
        self._stop = asyncio.Event()
        config = ApiConfig(dsn=dsn, token=TOKEN, reads_need_token=False)
        async with serving(create_app(config), host="127.0.0.1", port=0) as listening:
            self.base_url = listening.base_url
            self._started.set()
            await self._stop.wait()

    def stop(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


async def _prepare(server_dsn: str, template: str, bundle: ModelBundle) -> tuple[str, str]:
    name, dsn = await copy_template(server_dsn, template, "cf_schema")
    conn = await asyncpg.connect(dsn)
    try:
        await import_bundle(conn, replace(bundle, name="alpha"), activate=True)
        await insert_metrics(conn, market_rows(coins=3, seconds=120))
    finally:
        await conn.close()
    return name, dsn


@pytest.fixture(scope="module")
def served(server_dsn: str, template_name: str, small_bundle: ModelBundle) -> Iterator[str]:
    """The base URL of a server with one model and some market rows."""
    name, dsn = asyncio.run(_prepare(server_dsn, template_name, small_bundle))
    server = ServerThread(dsn)
    try:
        yield server.base_url
    finally:
        server.stop()
        asyncio.run(drop_database(server_dsn, name))


def check_operation(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> None:
    """Bounded examples of one operation, each answered within its schema."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def examples(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS, timeout=30)

    try:
        examples()
    except Unsatisfiable:
        # an operation with nothing to get wrong (no parameters, no body) has no invalid examples
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_every_operation_keeps_its_schema(served: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/api/openapi.json").exclude(path=list(EXCLUDED_PATHS))
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check_operation(operation, mode)
