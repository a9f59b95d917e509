"""The token check of the UI: when the UI is reachable beyond loopback, a browser session must present
the API token once (kept in NiceGUI's signed per-browser storage) before any page shows."""

from __future__ import annotations

import hmac

from nicegui import app, ui

from coinfleet.ui import context

_SESSION_KEY = "coinfleet_token_ok"


def allowed() -> bool:
    """Whether this browser may see pages; if not, it is sent to the login page."""
    if context.current().token is None or app.storage.user.get(_SESSION_KEY):
        return True
    ui.navigate.to("/login")
    return False


def token_matches(given: str) -> bool:
    """Constant-time comparison with the configured token."""
    expected = context.current().token
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


@ui.page("/login")
async def login_page() -> None:
    """Ask for the API token."""
    ui.page_title("Log in · coinfleet")
    with ui.card().classes("mx-auto mt-24 w-96"):
        ui.label("coinfleet").classes("text-xl font-bold")
        ui.label("Enter the API token (printed when it was generated; COINFLEET_API_TOKEN).").classes(
            "text-sm"
        )
        field = ui.input("API token", password=True).classes("w-full").props("data-testid=login-token")

        def submit() -> None:
            if not token_matches(field.value.strip()):
                field.error = "wrong token"
                return
            app.storage.user[_SESSION_KEY] = True
            ui.navigate.to("/")

        field.on("keydown.enter", submit)
        ui.button("Log in", on_click=submit).props("data-testid=login-submit")
