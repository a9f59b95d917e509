"""Serve the UI alone on a database, for the browser tests: `python serve_ui.py DSN PORT [TOKEN]`."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from coinfleet.config import Settings
from coinfleet.db.database import create_pool
from coinfleet.service import predictions
from coinfleet.ui import mount


def build(dsn: str, token: str | None) -> FastAPI:
    """A FastAPI app whose lifespan owns the pool, with the UI mounted."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(dsn, max_size=4)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    settings = Settings(database_url=dsn, webhook_allow_private=True)
    mount(app, settings=settings, pool=lambda: app.state.pool, token=token)
    return app


if __name__ == "__main__":
    if "COINFLEET_TEST_LOG_SCAN_LIMIT" in os.environ:  # a small table's bound (browser.conftest.ui_server)
        predictions.SCAN_LIMIT = int(os.environ["COINFLEET_TEST_LOG_SCAN_LIMIT"])
    token = sys.argv[3] if len(sys.argv) > 3 else None
    uvicorn.run(build(sys.argv[1], token), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
