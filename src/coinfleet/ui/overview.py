"""The landing page: one card per model with its state, lag, throughput and record, updated live."""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import urlsplit

from nicegui import ui

from coinfleet.errors import CoinfleetError
from coinfleet.ui import actions, charts, data
from coinfleet.ui.layout import (
    STATUS_COLOURS,
    TAG_COLOURS,
    connected,
    error_box,
    fmt_num,
    fmt_pct,
    frame,
    status_badge,
)
from coinfleet.ui.live import History, Sample, Shared

REFRESH_SECONDS = 2.0  #: how often an open overview asks for new numbers
HISTORY = History(size=150)  #: five minutes at one sample per two seconds
LINES = ("lag", "throughput", "stored", "predictions", "record", "webhook", "slots")


async def _read_fleet() -> list[data.FleetRow]:
    rows = await data.fleet()
    now = time.time()
    for row in rows:
        lane = row.model.lane
        counted = row.events if row.events is not None else lane.stored_predictions
        HISTORY.add(
            row.model.id,
            Sample(at=now, events=counted, lag_events=lane.lag_events, lag_seconds=lane.lag_seconds),
        )
    HISTORY.forget_except({row.model.id for row in rows})
    return rows


FLEET = Shared(_read_fleet, max_age=REFRESH_SECONDS * 0.75)


def slot_share(row: data.FleetRow, rows: list[data.FleetRow]) -> float | None:
    """The model's share of execution slots when every active model wants them (weighted fair queueing)."""
    if row.model.status != "active":
        return None
    total = sum(r.weight for r in rows if r.model.status == "active")
    return row.weight / total if total else None


READING = "reading…"  #: in place of the record's figures until its first read has finished


def _clock(at: datetime | None) -> str:
    return "never" if at is None else at.strftime("%H:%M:%S")


def _webhook_line(row: data.FleetRow) -> str:
    settings, lane = row.model.settings, row.model.lane
    url = settings.get("webhook_url")
    where = urlsplit(url).netloc if url else "default URL or none"
    state = "on" if settings.get("webhook_enabled", True) else "off"
    return (
        f"webhook {state} ({where}) · last delivery "
        f"{_clock(row.record.last_delivery) if row.record.read else READING} · "
        f"pending {lane.alerts_pending} · dead {lane.alerts_dead}"
    )


def _lines(row: data.FleetRow, rows: list[data.FleetRow]) -> dict[str, str]:
    lane, stats = row.model.lane, row.record.stats
    rate = HISTORY.latest_rate(row.model.id)
    unit = "events/s" if row.events is not None else "predictions/s"
    tags = stats.by_tag if stats else {}
    restarts = "–" if row.restarts is None else str(row.restarts)
    lines = {
        "lag": f"lag {lane.lag_events}{'+' * lane.lag_events_capped} events · {lane.lag_seconds:.1f} s",
        "throughput": f"{unit} {fmt_num(rate, digits=1)}",
        "stored": f"stored predictions {lane.stored_predictions} · last at {_clock(lane.last_prediction_at)}",
        "predictions": "last 24 h: " + " · ".join(f"{tag} {tags.get(tag, 0)}" for tag in TAG_COLOURS),
        "record": (
            f"alert precision {fmt_pct(stats.alert_precision_at_horizon if stats else None)} at horizon, "
            f"{fmt_pct(stats.alert_precision_within if stats else None)} within · "
            f"mean alert gain {fmt_num(stats.alert_gain_avg_pct if stats else None)} %"
        ),
        "webhook": _webhook_line(row),
        "slots": f"weight {row.weight:g} · slot share {fmt_pct(slot_share(row, rows), digits=0)}"
        f" · runner restarts {restarts}",
    }
    if not row.record.read:
        lines["predictions"] = f"last 24 h: {READING}"
        lines["record"] = f"alert precision and gain: {READING}"
    return lines


class ModelCard:
    """The card of one model; `update` changes its texts and chart in place (no flicker)."""

    def __init__(self, row: data.FleetRow, rows: list[data.FleetRow]) -> None:
        name = row.model.name
        with ui.card().classes("w-[31rem] gap-1").props(f"data-testid=card-{name}"):
            with ui.row().classes("items-center w-full justify-between"):
                ui.link(name, f"/models/{name}").classes("text-lg font-semibold")
                self.status = status_badge(row.model.status).props("data-testid=status")
            ui.label(f"{row.model.algorithm} · {row.model.target.description}").classes(
                "text-sm text-gray-600"
            )
            with ui.row().classes("items-center gap-2") as self.quarantine:
                self.reason = ui.label().classes("text-red-700 text-sm")
                ui.button("Resume", on_click=lambda: self._resume(name)).props("dense color=negative")
            self.lines = {key: ui.label().classes("text-sm").props(f"data-testid={key}") for key in LINES}
            self.chart = ui.echart(charts.throughput_and_lag([])).classes("w-full h-32")
        self.update(row, rows)

    async def _resume(self, name: str) -> None:
        try:
            await actions.change_status(name, "resume")
        except CoinfleetError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.notify(f"{name} resumed", type="positive")

    def update(self, row: data.FleetRow, rows: list[data.FleetRow]) -> None:
        """Show the newest numbers of this model."""
        model = row.model
        self.status.set_text(model.status)
        self.status.props(f"color={STATUS_COLOURS.get(model.status, 'grey')}")
        self.quarantine.set_visibility(model.status == "quarantined")
        self.reason.set_text(f"quarantined: {model.status_reason or 'no reason recorded'}")
        for key, text in _lines(row, rows).items():
            self.lines[key].set_text(text)
        self.chart.options.update(charts.throughput_and_lag(HISTORY.points(model.id)))
        self.chart.update()


class Fleet:
    """The grid of cards, rebuilt when models come or go, updated in place otherwise."""

    def __init__(self) -> None:
        self.problem = error_box("").classes("hidden")
        self.grid = ui.row().classes("w-full gap-4")
        self.cards: dict[int, ModelCard] = {}
        self.built = False

    async def refresh(self) -> None:
        """Read the fleet (shared with every other open overview) and show it."""
        try:
            rows = await FLEET.get()
        except Exception as exc:  # the page stays up, says why, and tries again next tick
            self.problem.set_text(f"cannot read the fleet: {exc}")
            self.problem.classes(remove="hidden")
            return
        self.problem.classes(add="hidden")
        if not self.built or {r.model.id for r in rows} != set(self.cards):
            self.built = True
            self.grid.clear()
            with self.grid:
                if not rows:
                    ui.label("No models yet: import one on the Import page.")
                self.cards = {row.model.id: ModelCard(row, rows) for row in rows}
            return
        for row in rows:
            self.cards[row.model.id].update(row, rows)


@ui.page("/")
async def overview_page() -> None:
    """Fleet overview."""
    with frame("Fleet") as shown:
        if not shown:
            return
        fleet = Fleet()
        await connected()
        await fleet.refresh()
        ui.timer(REFRESH_SECONDS, fleet.refresh)
