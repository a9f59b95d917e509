"""Alerts: the webhook outbox across models by state, each alert's attempts, retries and a test send."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from coinfleet.errors import CoinfleetError
from coinfleet.service import alerts as alert_reads
from coinfleet.service import models as model_reads
from coinfleet.service.schemas import Alert, AlertQuery
from coinfleet.ui import actions, context
from coinfleet.ui.layout import connected, frame

PAGE_SIZE = 50
STATES = {"all": "All", "pending": "Pending", "delivered": "Delivered", "dead": "Dead"}
COLUMNS: list[dict[str, Any]] = [
    {"name": key, "label": label, "field": key, "align": "left"}
    for key, label in (
        ("id", "Id"), ("model", "Model"), ("mint", "Coin"), ("tag", "Tag"), ("state", "State"),
        ("attempts", "Attempts"), ("last_status", "Last status"), ("last_error", "Last error"),
        ("created_at", "Queued"), ("delivered_at", "Delivered"),
    )
]  # fmt: skip
ATTEMPT_COLUMNS: list[dict[str, Any]] = [
    {"name": key, "label": label, "field": key, "align": "left"}
    for key, label in (
        ("attempt", "#"), ("attempted_at", "At"), ("status_code", "Status"), ("latency_ms", "Latency ms"),
        ("error", "Error"), ("response_excerpt", "Response"),
    )
]  # fmt: skip


def _time(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def row_of(a: Alert) -> dict[str, Any]:
    """A table row for one alert."""
    return {
        "id": a.id, "model": a.model_name, "mint": a.mint, "tag": a.tag, "state": a.state,
        "attempts": a.attempts, "last_status": a.last_status or "", "last_error": (a.last_error or "")[:80],
        "created_at": _time(a.created_at), "delivered_at": _time(a.delivered_at),
    }  # fmt: skip


class AlertList:
    """State and model filters, a page of alerts, and a dialog with one alert's attempts."""

    def __init__(self, model_names: list[str]) -> None:
        self._cursors: list[str | None] = [None]
        self._next: str | None = None
        with ui.row().classes("items-end gap-4"):
            self.state = ui.toggle(STATES, value="all", on_change=self.first_page).props(
                "data-testid=alert-state"
            )
            self.model = ui.select(model_names, label="Model", clearable=True, on_change=self.first_page)
            self.model.classes("w-48").props("data-testid=alert-model")
            retry = ui.button("Retry dead alerts", on_click=self.retry_dead)
            retry.props("flat color=negative data-testid=retry-dead")
            retry.tooltip("of the chosen model, or of every model when none is chosen")
        self.table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full")
        self.table.props("dense flat data-testid=alert-table")
        self.table.on("rowClick", lambda e: self.open_detail(int(e.args[1]["id"])))
        with ui.row().classes("items-center gap-2"):
            self.previous = ui.button("Previous", on_click=self.previous_page).props("flat")
            self.next = ui.button("Next", on_click=self.next_page).props("flat")
            self.position = ui.label()

    async def show(self) -> None:
        """Read the current page."""
        state = None if self.state.value == "all" else self.state.value
        wanted = AlertQuery(model=self.model.value, state=state, limit=PAGE_SIZE, cursor=self._cursors[-1])
        try:
            page = await alert_reads.list_alerts(context.pool(), wanted)
        except CoinfleetError as exc:
            ui.notify(str(exc), type="negative")
            return
        self.table.rows = [row_of(a) for a in page.items]
        self.table.update()
        self._next = page.next_cursor
        self.next.set_enabled(page.next_cursor is not None)
        self.previous.set_enabled(len(self._cursors) > 1)
        self.position.set_text(f"page {len(self._cursors)} · {len(page.items)} alerts")

    async def first_page(self) -> None:
        """Newest alerts matching the filters."""
        self._cursors = [None]
        await self.show()

    async def next_page(self) -> None:
        """Older alerts."""
        if self._next is not None:
            self._cursors.append(self._next)
            await self.show()

    async def previous_page(self) -> None:
        """Newer alerts."""
        if len(self._cursors) > 1:
            self._cursors.pop()
            await self.show()

    async def retry_dead(self) -> None:
        """Queue every dead alert of the chosen model (or of every model) again."""
        names = [self.model.value] if self.model.value else await actions.models_with_dead_alerts()
        queued = 0
        for name in names:
            try:
                queued += await actions.retry_dead(name)
            except CoinfleetError as exc:
                ui.notify(f"{name}: {exc}", type="negative")
        ui.notify(f"{queued} dead alerts queued again", type="positive")
        await self.show()

    async def open_detail(self, alert_id: int) -> None:
        """A dialog with the alert's attempts, and Retry when it is dead."""
        detail = await alert_reads.alert_detail(context.pool(), alert_id)
        with ui.dialog() as dialog, ui.card().classes("min-w-[56rem]").props("data-testid=alert-detail"):
            a = detail.alert
            ui.label(f"Alert {a.id} · {a.model_name} · {a.tag} · {a.state}").classes("text-lg font-semibold")
            ui.label(f"{a.url} · key {a.idempotency_key}").classes("text-sm text-gray-600")
            rows = [
                {**attempt.model_dump(), "attempted_at": _time(attempt.attempted_at),
                 "latency_ms": f"{attempt.latency_ms:.1f}"}
                for attempt in detail.attempts
            ]  # fmt: skip
            ui.table(columns=ATTEMPT_COLUMNS, rows=rows).classes("w-full").props("dense flat")
            with ui.row():
                if a.state == "dead":
                    ui.button("Retry", on_click=lambda: self._retry(dialog, a.id)).props(
                        "data-testid=retry-one"
                    )
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    async def _retry(self, dialog: ui.dialog, alert_id: int) -> None:
        try:
            await actions.retry_alert(alert_id)
        except CoinfleetError as exc:
            ui.notify(str(exc), type="negative")
            return
        dialog.close()
        ui.notify(f"alert {alert_id} queued again", type="positive")
        await self.show()


def _test_sender(model_names: list[str]) -> None:
    with ui.card().classes("w-full"):
        ui.label("Send a test alert").classes("font-semibold")
        with ui.row().classes("items-end gap-2 w-full"):
            url = ui.input("Webhook URL").classes("w-[32rem]").props("data-testid=test-url")
            model = ui.select(model_names, label="Sign and shape as model", clearable=True).classes("w-56")
            result = ui.label().props("data-testid=test-result")

            async def send() -> None:
                url.error = None
                try:
                    attempt = await actions.send_test(url.value.strip(), model.value)
                except CoinfleetError as exc:
                    url.error = str(exc)
                    result.set_text("")
                    return
                outcome = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
                result.set_text(f"{outcome} in {attempt.latency_ms:.0f} ms · {attempt.excerpt or ''}"[:200])

            ui.button("Send test", on_click=send).props("data-testid=test-send")


@ui.page("/alerts")
async def alerts_page() -> None:
    """Alerts across models."""
    with frame("Alerts") as shown:
        if not shown:
            return
        await connected()
        names = [m.name for m in await model_reads.list_models(context.pool())]
        alert_list = AlertList(names)
        _test_sender(names)
        await alert_list.first_page()
