"""The landing page: one card per model with its state, lag, throughput and record, updated live."""

from __future__ import annotations

import time

from nicegui import ui

from coinfleet.ui import charts, data
from coinfleet.ui.layout import STATUS_COLOURS, TAG_COLOURS, error_box, fmt_num, fmt_pct, frame, status_badge
from coinfleet.ui.live import History, Sample, Shared

REFRESH_SECONDS = 2.0  #: how often an open overview asks for new numbers
HISTORY = History(size=150)  #: five minutes at one sample per two seconds


async def _read_fleet() -> list[data.FleetRow]:
    rows = await data.fleet()
    now = time.time()
    for row in rows:
        HISTORY.add(
            row.model.id,
            Sample(
                at=now, events=row.stored_predictions, lag_events=row.lag_events, lag_seconds=row.lag_seconds
            ),
        )
    HISTORY.forget_except({row.model.id for row in rows})
    return rows


FLEET = Shared(_read_fleet, max_age=REFRESH_SECONDS * 0.75)


def _share(row: data.FleetRow, rows: list[data.FleetRow]) -> float | None:
    """The model's share of execution slots when every active model wants them."""
    if row.model.status != "active":
        return None
    total = sum(r.model.settings.weight for r in rows if r.model.status == "active")
    return row.model.settings.weight / total if total else None


class ModelCard:
    """The card of one model; `update` changes its texts and chart in place (no flicker)."""

    def __init__(self, row: data.FleetRow) -> None:
        name = row.model.name
        with ui.card().classes("w-[30rem]").props(f"data-testid=card-{name}"):
            with ui.row().classes("items-center w-full justify-between"):
                ui.link(name, f"/models/{name}").classes("text-lg font-semibold")
                self.status = status_badge(row.model.status)
            ui.label(f"{row.model.algorithm} · {row.model.target.describe()}").classes(
                "text-sm text-gray-600"
            )
            with ui.row().classes("items-center gap-2") as self.quarantine:
                self.reason = ui.label().classes("text-red-700 text-sm")
                ui.button("Resume", on_click=lambda: self._resume(name)).props("dense color=negative")
            self.lines = {
                key: self._line(key) for key in ("lag", "throughput", "predictions", "record", "slots")
            }
            self.chart = ui.echart(charts.throughput_and_lag([])).classes("w-full h-36")
        self.update(row, [row])

    @staticmethod
    def _line(key: str) -> ui.label:
        return ui.label().classes("text-sm").props(f"data-testid={key}")

    async def _resume(self, name: str) -> None:
        await data.set_status(name, "active")
        ui.notify(f"{name} resumed")

    def update(self, row: data.FleetRow, rows: list[data.FleetRow]) -> None:
        """Show the newest numbers of this model."""
        model, stats = row.model, row.stats
        self.status.set_text(model.status)
        self.status.props(f"color={STATUS_COLOURS.get(model.status, 'grey')}")
        self.quarantine.set_visibility(model.status == "quarantined")
        self.reason.set_text(f"quarantined: {model.status_reason or 'no reason recorded'}")
        lag_s = "–" if row.lag_seconds is None else f"{row.lag_seconds:.1f} s"
        self.lines["lag"].set_text(f"lag: {row.lag_events} events · {lag_s}")
        rate = HISTORY.latest_rate(model.id)
        self.lines["throughput"].set_text(f"predictions/s: {fmt_num(rate, digits=1)}")
        tags = stats.by_tag if stats else {}
        self.lines["predictions"].set_text(
            "predictions: " + " · ".join(f"{tag} {tags.get(tag, 0)}" for tag in TAG_COLOURS)
        )
        self.lines["record"].set_text(
            f"alert precision {fmt_pct(stats.alert_precision_at_horizon if stats else None)} at horizon, "
            f"{fmt_pct(stats.alert_precision_within if stats else None)} within · "
            f"mean alert gain {fmt_num(stats.alert_gain_avg_pct if stats else None)} %"
        )
        self.lines["slots"].set_text(
            f"weight {model.settings.weight:g} · slot share {fmt_pct(_share(row, rows), digits=0)}"
        )
        self.chart.options.update(charts.throughput_and_lag(HISTORY.points(model.id)))
        self.chart.update()


class Fleet:
    """The grid of cards, rebuilt when models come or go, updated in place otherwise."""

    def __init__(self) -> None:
        self.grid = ui.row().classes("w-full gap-4")
        self.cards: dict[int, ModelCard] = {}
        self.problem = error_box("").classes("hidden")

    async def refresh(self) -> None:
        """Read the fleet (shared with every other open overview) and show it."""
        try:
            rows = await FLEET.get()
        except Exception as exc:  # the page stays up and says why, and tries again next tick
            self.problem.set_text(f"cannot read the fleet: {exc}")
            self.problem.classes(remove="hidden")
            return
        self.problem.classes(add="hidden")
        if {r.model.id for r in rows} != set(self.cards):
            self.grid.clear()
            with self.grid:
                if not rows:
                    ui.label("No models yet: import one on the Import page.")
                self.cards = {row.model.id: ModelCard(row) for row in rows}
        for row in rows:
            self.cards[row.model.id].update(row, rows)


@ui.page("/")
async def overview_page() -> None:
    """Fleet overview."""
    with frame("Fleet"):
        fleet = Fleet()
        await fleet.refresh()
        ui.timer(REFRESH_SECONDS, fleet.refresh)
