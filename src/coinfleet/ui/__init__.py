"""The web UI: NiceGUI pages mounted on the FastAPI app at /ui, reading through coinfleet's read side."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import asyncpg
from fastapi import FastAPI

from coinfleet.config import Settings
from coinfleet.ui.context import UiContext, install

MOUNT_PATH = "/ui"


def mount(
    app: FastAPI,
    *,
    settings: Settings,
    pool: Callable[[], asyncpg.Pool] | None = None,
    token: str | None = None,
    storage_secret: str | None = None,
) -> None:
    """Serve the UI at /ui on `app`; call after the app's routes and lifespan exist.

    The pages use `pool()` (default: the `app.state.pool` the app's lifespan opens). With a `token`
    (give the API's token when listening beyond loopback) a browser must enter it once before any page
    shows; without one the UI is open, like the CLI to a local user.
    """
    from nicegui import ui
    from nicegui.storage import Storage

    from coinfleet.ui import pages  # noqa: F401  (importing registers the pages)

    # browser sessions (the login) are kept under coinfleet's home, not in the working directory
    Storage.path = settings.home / "ui-sessions"

    install(UiContext(pool=pool or (lambda: app.state.pool), settings=settings, token=token))
    ui.run_with(
        app,
        mount_path=MOUNT_PATH,
        title="coinfleet",
        storage_secret=storage_secret or secrets.token_urlsafe(32),
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )
