"""The prediction log: the predecessor's filters, keyset pages, each row linked to its coin."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from pydantic import ValidationError

from coinfleet.errors import CoinfleetError
from coinfleet.service import predictions
from coinfleet.service.schemas import Prediction, PredictionQuery
from coinfleet.service.stats import parse_since
from coinfleet.ui import context
from coinfleet.ui.layout import fmt_num

PAGE_SIZE = 50
COLUMNS: list[dict[str, Any]] = [
    {"name": "metric_ts", "label": "Metric time", "field": "metric_ts", "align": "left"},
    {"name": "mint", "label": "Coin", "field": "mint", "align": "left"},
    {"name": "model", "label": "Model", "field": "model", "align": "left"},
    {"name": "probability", "label": "p", "field": "probability"},
    {"name": "tag", "label": "Tag", "field": "tag"},
    {"name": "state", "label": "State", "field": "state"},
    {"name": "horizon", "label": "At horizon", "field": "horizon"},
    {"name": "within", "label": "Within", "field": "within"},
    {"name": "change", "label": "Change %", "field": "change"},
    {"name": "ath", "label": "ATH %", "field": "ath"},
    {"name": "low", "label": "Min %", "field": "low"},
]
TEXT_FILTERS: tuple[tuple[str, str], ...] = (
    ("mint", "Coin"),
    ("probability_min", "p ≥"),
    ("probability_max", "p ≤"),
    ("ath_min", "ATH % ≥"),
    ("ath_max", "ATH % ≤"),
    ("change_min", "Change % ≥"),
    ("change_max", "Change % ≤"),
    ("since", "Since (1h, 7d, ISO)"),
    ("until", "Until (ISO)"),
)
CHOICE_FILTERS: tuple[tuple[str, str, list[str]], ...] = (
    ("tag", "Tag", ["negative", "positive", "alert"]),
    ("state", "Evaluation", ["waiting", "evaluated"]),
    ("result", "Result", ["success", "failed", "not_applicable"]),
    ("rule", "Judged", ["horizon", "within"]),
)


def row_of(p: Prediction) -> dict[str, Any]:
    """A table row for one prediction."""
    evaluation = p.evaluation
    return {
        "id": p.id,
        "metric_ts": p.metric_ts.strftime("%Y-%m-%d %H:%M:%S"),
        "mint": p.mint,
        "model": p.model_name,
        "probability": f"{p.probability:.3f}",
        "tag": p.tag,
        "state": p.state,
        "horizon": evaluation.result_at_horizon if evaluation else "",
        "within": evaluation.result_within if evaluation else "",
        "change": fmt_num(evaluation.change_at_horizon_pct if evaluation else None),
        "ath": fmt_num(p.max_change_pct),
        "low": fmt_num(p.min_change_pct),
    }


class PredictionLog:
    """Filter inputs, a table of one page, and next/previous buttons walking the cursors."""

    def __init__(self, *, model: str | None = None, mint: str | None = None) -> None:
        self._fixed = {"model": model, "mint": mint}
        self._cursors: list[str | None] = [None]
        self.inputs: dict[str, Any] = {}
        with ui.row().classes("items-end gap-2 flex-wrap"):
            for key, label, options in CHOICE_FILTERS:
                default = "horizon" if key == "rule" else None
                self.inputs[key] = ui.select(options, label=label, value=default, clearable=key != "rule")
                self.inputs[key].classes("w-32").props(f"dense data-testid=filter-{key}")
            for key, label in TEXT_FILTERS:
                if self._fixed.get(key):
                    continue
                self.inputs[key] = ui.input(label).classes("w-36").props(f"dense data-testid=filter-{key}")
            ui.button("Apply", on_click=self.first_page).props("data-testid=filter-apply")
        self.table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full")
        self.table.props("dense flat data-testid=prediction-table")
        self.table.add_slot(
            "body-cell-mint",
            '<q-td :props="props"><a :href="\'../coins/\' + props.value" class="text-blue-700">'
            "{{ props.value.slice(0, 12) }}…</a></q-td>",
        )
        with ui.row().classes("items-center gap-2"):
            self.previous = ui.button("Previous", on_click=self.previous_page).props("flat")
            self.next = ui.button("Next", on_click=self.next_page).props("flat data-testid=next-page")
            self.position = ui.label()
            self.further = ui.button("Search further back", on_click=self.next_page)
            self.further.props("flat data-testid=search-further").set_visibility(False)

    def _query(self, cursor: str | None) -> PredictionQuery | None:
        """The query the filters describe; None, with every wrong filter marked, when any is wrong."""
        for element in self.inputs.values():
            element.error = None
        values: dict[str, Any] = {k: v for k, v in self._fixed.items() if v}
        errors: dict[str, str] = {}
        for key, element in self.inputs.items():
            value = element.value.strip() if isinstance(element.value, str) else element.value
            if value in (None, ""):
                continue
            if key in ("since", "until"):
                try:
                    value = parse_since(value)
                except CoinfleetError as exc:
                    errors[key] = str(exc)
                    continue
            values[key] = value
        wanted = None
        try:
            wanted = PredictionQuery(**values, limit=PAGE_SIZE, cursor=cursor)
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] and str(err["loc"][0]) in self.inputs else "since"
                errors.setdefault(key, str(err["msg"]).removeprefix("Value error, "))
        for key, message in errors.items():
            self.inputs[key].error = message
        return None if errors else wanted

    async def show(self) -> None:
        """Read the page at the current cursor and show it."""
        wanted = self._query(self._cursors[-1])
        if wanted is None:
            return
        try:
            page = await predictions.list_predictions(context.pool(), wanted)
        except CoinfleetError as exc:
            ui.notify(str(exc), type="negative")
            return
        self.table.rows = [row_of(p) for p in page.items]
        self.table.update()
        self._next_cursor = page.next_cursor
        searched = page.searched_to_id is not None
        self.next.set_enabled(page.next_cursor is not None and not searched)
        self.further.set_visibility(searched)
        self.previous.set_enabled(len(self._cursors) > 1)
        text = f"page {len(self._cursors)} · {len(page.items)} predictions"
        if searched and page.searched_to_time is not None:
            text += (
                f" · searched back to {page.searched_to_time:%Y-%m-%d %H:%M:%S}"
                f" ({predictions.SCAN_LIMIT:,} stored predictions a page)"
            )
        self.position.set_text(text)

    async def first_page(self) -> None:
        """Apply the filters from the newest prediction."""
        self._cursors = [None]
        await self.show()

    async def next_page(self) -> None:
        """Older predictions."""
        if self._next_cursor is not None:
            self._cursors.append(self._next_cursor)
            await self.show()

    async def previous_page(self) -> None:
        """Newer predictions."""
        if len(self._cursors) > 1:
            self._cursors.pop()
            await self.show()
