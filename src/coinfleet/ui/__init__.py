"""The web UI: NiceGUI pages mounted on the FastAPI app at /ui, reading and writing through the service
layer."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import asyncpg
from fastapi import FastAPI

from coinfleet.config import Settings
from coinfleet.ui.context import UiContext, install

MOUNT_PATH = "/ui"


def _app_pool(app: FastAPI) -> Callable[[], asyncpg.Pool]:
    """The pool of coinfleet's API app (`app.state.shared.pool`, opened by its lifespan)."""
    return lambda: app.state.shared.pool


def _app_token(app: FastAPI) -> str | None:
    """The API token when the app asks for it on reads too (it listens beyond loopback)."""
    check = getattr(app.state, "token_check", None)
    return check.token if check is not None and check.reads_need_token else None


def mount(
    app: FastAPI,
    *,
    settings: Settings | None = None,
    pool: Callable[[], asyncpg.Pool] | None = None,
    token: str | None = None,
    storage_secret: str | None = None,
) -> None:
    """Serve the UI at /ui on `app`; call after the app's routes and lifespan exist.

    Given nothing but the app (coinfleet's `create_app` does that), the pages use the app's settings,
    pool and token check. With a token (the API's, when it listens beyond loopback) a browser must enter
    it once before any page shows; without one the UI is open, like the CLI to a local user.
    """
    from nicegui import ui
    from nicegui.storage import Storage

    from coinfleet.ui import pages  # noqa: F401  (importing registers the pages)

    settings = settings or app.state.settings
    # browser sessions (the login) are kept under coinfleet's home, not in the working directory
    Storage.path = settings.home / "ui-sessions"
    install(
        UiContext(
            pool=pool or _app_pool(app),
            settings=settings,
            token=token or _app_token(app),
            lane_metrics=getattr(app.state, "lanes_metrics", None),
        )
    )
    ui.run_with(
        app,
        mount_path=MOUNT_PATH,
        title="coinfleet",
        storage_secret=storage_secret or secrets.token_urlsafe(32),
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )
