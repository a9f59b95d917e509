"""The frame around every page: a header with the navigation, and a content column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from coinfleet.ui import login

NAVIGATION: tuple[tuple[str, str], ...] = (
    ("Fleet", "/"),
    ("Alerts", "/alerts"),
    ("Import", "/import"),
)
TAG_COLOURS: dict[str, str] = {"negative": "#64748b", "positive": "#f59e0b", "alert": "#dc2626"}
STATUS_COLOURS: dict[str, str] = {
    "active": "positive",
    "inactive": "grey",
    "quarantined": "negative",
    "deleted": "dark",
}


@contextmanager
def frame(title: str) -> Iterator[bool]:
    """Header, navigation and a titled content column; the page's elements go inside. Yields False
    (and shows nothing) when this browser must log in first: the page then builds nothing."""
    if not login.allowed():
        yield False
        return
    ui.page_title(f"{title} · coinfleet")
    with ui.header().classes("items-center gap-6 bg-slate-800 px-6 py-2"):
        ui.link("coinfleet", "/").classes("text-xl font-bold text-white no-underline")
        for label, target in NAVIGATION:
            ui.link(label, target).classes("text-white no-underline opacity-90 hover:opacity-100")
    with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold").props("data-testid=page-title")
        yield True


async def connected() -> None:
    """Wait until the browser has the page's frame and its WebSocket is up. Pages read the database
    after this: a page NiceGUI cannot send within its 3 s response timeout is replaced by an error
    page, and a read may take longer than that on a busy machine or over millions of predictions."""
    await ui.context.client.connected()


def status_badge(status: str) -> ui.badge:
    """A coloured badge for a model status."""
    return ui.badge(status, color=STATUS_COLOURS.get(status, "grey"))


def error_box(message: str) -> ui.label:
    """A visible error message (a page that cannot show its data says why)."""
    return ui.label(message).classes("text-red-700 bg-red-50 p-3 rounded")


def fmt_pct(value: float | None, *, digits: int = 1) -> str:
    """A fraction as a percentage, or '–' when unknown."""
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def fmt_num(value: float | None, *, digits: int = 2) -> str:
    """A number with a fixed number of decimals, or '–' when unknown."""
    return "–" if value is None else f"{value:.{digits}f}"
