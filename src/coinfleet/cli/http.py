"""Options and messages shared by the commands that serve HTTP (serve, api, demo)."""

from __future__ import annotations

import typer
from rich.console import Console

from coinfleet.api.app import UiMount
from coinfleet.api.auth import resolve_token
from coinfleet.api.server import Listening
from coinfleet.api.serving import HttpOptions
from coinfleet.cli.common import err_console, load_settings

HOST_OPTION = typer.Option(None, help="Address to listen on [env COINFLEET_API_HOST, default 127.0.0.1].")
PORT_OPTION = typer.Option(None, min=0, max=65535, help="TCP port [env COINFLEET_API_PORT, default 8000].")


def http_options(host: str | None, port: int | None) -> HttpOptions:
    """Listening address from options over settings; the token, printed once when just generated."""
    settings = load_settings()
    token = resolve_token(settings)
    if token.generated:
        err_console.print(f"API token (shown once; kept in {token.path}): {token.value}", soft_wrap=True)
    chosen = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return HttpOptions.from_settings(settings, token.value, ui=web_ui(), **chosen)


def web_ui() -> UiMount | None:
    """What mounts the web UI at /ui on the app (`create_app` calls it after every API route exists).

    The UI package plugs in here: `from coinfleet.ui import mount; return mount`.
    """
    return None


def print_urls(listening: Listening, screen: Console = err_console) -> None:
    """Where to point a browser, curl and Prometheus."""
    base = listening.base_url
    for what, path in (("API docs", "/api/docs"), ("UI", "/ui/"), ("metrics", "/metrics"), ("MCP", "/mcp/")):
        screen.print(f"{what}: {base}{path}", soft_wrap=True)
