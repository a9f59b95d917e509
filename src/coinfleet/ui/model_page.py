"""Model detail: its lane and record, the prediction log, statistics with charts, the settings editor."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from coinfleet.errors import CoinfleetError
from coinfleet.models.settings import ModelSettings
from coinfleet.service import models as model_reads
from coinfleet.service import quality
from coinfleet.service import stats as stat_reads
from coinfleet.service.model_charts import model_charts
from coinfleet.service.schemas import CalibrationReport, Model
from coinfleet.service.stats import parse_since
from coinfleet.ui import actions, charts, context
from coinfleet.ui.forms import FIELDS, check, display, service_error
from coinfleet.ui.layout import connected, error_box, fmt_num, fmt_pct, frame, status_badge
from coinfleet.ui.prediction_log import PredictionLog

WINDOWS = {"1h": "last hour", "24h": "last 24 h", "7d": "last 7 days", "all": "all time"}


def _summary(model: Model) -> None:
    lane = model.lane
    with ui.row().classes("items-center gap-3"):
        status_badge(model.status).props("data-testid=model-status")
        ui.label(f"{model.algorithm} · {model.target.description} · version {model.version}")
        ui.label(f"sha256 {model.sha256[:12]}…").classes("text-gray-500 text-sm")
    if model.status_reason:
        ui.label(f"{model.status}: {model.status_reason}").classes("text-red-700")
    lag = f"{lane.lag_events}{'+' if lane.lag_events_capped else ''} events · {lane.lag_seconds:.1f} s"
    ui.label(
        f"lag {lag} · stored predictions {lane.stored_predictions} · alerts pending {lane.alerts_pending}"
        f" · dead {lane.alerts_dead}" + (f" · scored by {lane.owner}" if lane.owner else "")
    ).classes("text-sm").props("data-testid=lane-line")


def _actions(model: Model) -> None:
    name = model.name
    with ui.row().classes("gap-2"):
        if model.status == "inactive":
            ui.button("Activate", on_click=lambda: _status(name, "activate")).props("data-testid=activate")
        if model.status == "active":
            ui.button("Deactivate", on_click=lambda: _confirm_deactivate(name)).props(
                "color=grey data-testid=deactivate"
            )
        if model.status == "quarantined":
            ui.button("Resume", on_click=lambda: _status(name, "resume")).props(
                "color=negative data-testid=resume"
            )
        ui.button("Rename", on_click=lambda: _rename_dialog(name)).props("flat data-testid=rename")
        ui.button("Delete", on_click=lambda: _delete_dialog(name)).props(
            "flat color=negative data-testid=delete"
        )


async def _status(name: str, action: actions.StatusAction) -> None:
    try:
        await actions.change_status(name, action)
    except CoinfleetError as exc:
        ui.notify(str(exc), type="negative")
        return
    ui.navigate.reload()


def _confirm_deactivate(name: str) -> None:
    with ui.dialog() as dialog, ui.card():
        ui.label(f"Deactivate {name}? It stops scoring; activating it later starts at new events.")

        async def deactivate() -> None:
            dialog.close()
            await _status(name, "deactivate")

        with ui.row():
            ui.button("Deactivate", on_click=deactivate).props("color=grey data-testid=deactivate-confirm")
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


def _rename_dialog(name: str) -> None:
    with ui.dialog() as dialog, ui.card():
        ui.label(f"Rename {name}")
        new_name = ui.input("New name").props("data-testid=rename-input")

        async def rename() -> None:
            try:
                await actions.rename(name, new_name.value.strip())
            except CoinfleetError as exc:
                new_name.error = str(exc)
                return
            dialog.close()
            ui.navigate.to(f"/models/{new_name.value.strip()}")

        with ui.row():
            ui.button("Rename", on_click=rename).props("data-testid=rename-confirm")
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


def _delete_dialog(name: str) -> None:
    with ui.dialog() as dialog, ui.card():
        ui.label(f"Delete {name}? Its lane stops; stored predictions stay unless you remove them too.")
        history = ui.checkbox("Also delete its predictions and alerts")

        async def delete() -> None:
            try:
                await actions.delete(name, with_history=history.value)
            except CoinfleetError as exc:
                ui.notify(str(exc), type="negative")
                return
            dialog.close()
            ui.navigate.to("/")

        with ui.row():
            ui.button("Delete", on_click=delete).props("color=negative data-testid=delete-confirm")
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


class SettingsEditor:
    """One input per setting; errors appear under their field and nothing is saved until all are right."""

    def __init__(self, model: Model) -> None:
        self.name = model.name
        self.current = ModelSettings.model_validate(model.settings)
        self.inputs: dict[str, Any] = {}
        with ui.grid(columns=3).classes("w-full gap-x-6 gap-y-1"):
            for f in FIELDS:
                self.inputs[f.key] = self._input(f.key, f.label, f.kind, f.options, f.hint)
        self.form_error = ui.label().classes("text-red-700").props("data-testid=settings-error")
        ui.button("Save settings", on_click=self.save).props("data-testid=settings-save")

    def _input(self, key: str, label: str, kind: str, options: tuple[str, ...], hint: str) -> Any:
        value = display(self.current, key)
        testid = f"data-testid=setting-{key}"
        if kind == "switch":
            return ui.switch(label, value=value).props(testid)
        if kind == "select":
            return ui.select(list(options), label=label, value=value).props(testid)
        if kind == "multi":
            return ui.select(list(options), label=label, value=value, multiple=True).props(
                f"use-chips {testid}"
            )
        element = ui.input(label, value=value).props(f"{testid} bottom-slots")
        return element.props(f'hint="{hint}"') if hint else element

    async def save(self) -> None:
        """Validate every field; save only when all are right."""
        for element in self.inputs.values():
            if hasattr(element, "error"):
                element.error = None
        self.form_error.set_text("")
        result = check(self.current, {key: element.value for key, element in self.inputs.items()})
        for key, message in result.errors.items():
            target = self.inputs.get(key)
            if target is None:
                self.form_error.set_text(message)
            else:
                target.error = message
        if result.settings is None:
            ui.notify("nothing saved: fix the marked fields", type="warning")
            return
        if not result.changes:
            ui.notify("nothing changed")
            return
        try:
            await actions.update_settings(self.name, result.changes)
        except CoinfleetError as exc:
            key, message = service_error(str(exc))
            if key in self.inputs:
                self.inputs[key].error = message
            else:
                self.form_error.set_text(message)
            ui.notify("nothing saved: fix the marked fields", type="warning")
            return
        self.current = result.settings
        ui.notify(f"saved: {', '.join(result.changed)}", type="positive")


class StatisticsTab:
    """Numbers and charts over a chosen window."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.window = ui.toggle(WINDOWS, value="24h", on_change=self.show).props("data-testid=stats-window")
        self.numbers = ui.row().classes("gap-6")
        with ui.grid(columns=3).classes("w-full gap-4"):
            self.hit_chart = ui.echart(charts.hit_rate_over_time([], [], [])).classes("h-72")
            self.histogram = ui.echart(charts.probability_histogram([0, 1], {})).classes("h-72")
            self.calibration = ui.echart(charts.calibration([], [], [])).classes("h-72")
        self.note = ui.label().classes("text-sm text-gray-500")
        self.shown = False

    async def show(self) -> None:
        """Read the window's statistics and redraw (first when the tab is opened: aggregates cost)."""
        self.shown = True
        since = parse_since(self.window.value)
        db = context.pool()
        report = await stat_reads.statistics(db, since=since, model=self.name)
        drawn = await model_charts(db, self.name, since=since)
        calibrated = next(iter(await quality.calibration(db, since=since, model=self.name)), None)
        self.numbers.clear()
        with self.numbers:
            for s in report.models:
                for label, value in (
                    ("predictions", str(s.predictions)),
                    ("alerts", str(s.by_tag.get("alert", 0))),
                    ("evaluated", str(s.evaluated)),
                    ("waiting", str(s.pending)),
                    ("hit rate at horizon", fmt_pct(s.hit_rate_at_horizon)),
                    ("hit rate within", fmt_pct(s.hit_rate_within)),
                    ("alert precision at horizon", fmt_pct(s.alert_precision_at_horizon)),
                    ("alert precision within", fmt_pct(s.alert_precision_within)),
                    ("mean alert gain", f"{fmt_num(s.alert_gain_avg_pct)} %"),
                    ("median alert gain", f"{fmt_num(s.alert_gain_median_pct)} %"),
                    *_brier_scores(calibrated),
                ):
                    with ui.column().classes("gap-0"):
                        ui.label(value).classes("text-lg font-semibold").props(f'data-testid="stat-{label}"')
                        ui.label(label).classes("text-xs text-gray-500")
        rates = drawn.hit_rates
        self._draw(self.hit_chart, charts.hit_rate_over_time(rates.buckets, rates.at_horizon, rates.within))
        self._draw(
            self.histogram, charts.probability_histogram(drawn.histogram.edges, drawn.histogram.counts)
        )
        self._draw(self.calibration, _calibration_chart(calibrated))
        capped = " (the newest; the window holds more)" if drawn.sample_capped else ""
        judged = calibrated.count if calibrated else 0
        self.note.set_text(
            f"hit rate and histogram drawn from {drawn.sample} predictions{capped}; "
            f"calibration from all {judged} judged in the window"
        )

    @staticmethod
    def _draw(chart: ui.echart, options: dict[str, Any]) -> None:
        chart.options.clear()
        chart.options.update(options)
        chart.update()


def _brier_scores(report: CalibrationReport | None) -> tuple[tuple[str, str], ...]:
    """The Brier score over the window's judged predictions and on the training's validation split."""
    validation = report.validation if report else None
    return (
        ("Brier score", fmt_num(report.brier if report else None, digits=4)),
        ("Brier on validation", fmt_num(validation.brier if validation else None, digits=4)),
    )


def _calibration_chart(report: CalibrationReport | None) -> dict[str, Any]:
    """The reliability table `coinfleet stats --reliability` prints, live beside the validation split."""
    if report is None:
        return charts.calibration([], [], [])
    validation = report.validation.table if report.validation else []
    return charts.calibration(
        [row.mean_probability for row in report.table],
        [row.hit_rate for row in report.table],
        [row.count for row in report.table],
        [(row.mean_probability, row.hit_rate, row.count) for row in validation],
    )


def _training(model: Model) -> None:
    metrics = {k: v for k, v in model.training_metrics.items() if isinstance(v, int | float | str)}
    rows = [
        {"metric": k, "value": f"{v:.4g}" if isinstance(v, float) else str(v)} for k, v in metrics.items()
    ]
    ui.table(
        columns=[{"name": c, "label": c, "field": c, "align": "left"} for c in ("metric", "value")], rows=rows
    )
    ui.label("Features: " + ", ".join(model.features)).classes("text-sm text-gray-600")


@ui.page("/models/{name}")
async def model_page(name: str) -> None:
    """Model detail."""
    with frame(name) as shown:
        if not shown:
            return
        await connected()
        try:
            model = await model_reads.show_model(context.pool(), name)
        except CoinfleetError as exc:
            error_box(str(exc))
            return
        _summary(model)
        _actions(model)
        statistics: StatisticsTab | None = None

        async def opened(tab: object) -> None:
            if statistics is not None and tab == "Statistics" and not statistics.shown:
                await statistics.show()

        with ui.tabs(on_change=lambda e: opened(e.value)).classes("w-full") as tabs:
            log_tab = ui.tab("Predictions")
            stats_tab = ui.tab("Statistics")
            settings_tab = ui.tab("Settings")
            training_tab = ui.tab("Training")
        with ui.tab_panels(tabs, value=log_tab).classes("w-full"):
            with ui.tab_panel(log_tab):
                log = PredictionLog(model=name)
            with ui.tab_panel(stats_tab):
                statistics = StatisticsTab(name)
            with ui.tab_panel(settings_tab):
                SettingsEditor(model)
            with ui.tab_panel(training_tab):
                _training(model)
        await log.first_page()
