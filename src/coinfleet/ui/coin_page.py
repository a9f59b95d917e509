"""Coin detail: price and market cap with every model's predictions, alerts and evaluation windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from nicegui import ui

from coinfleet.errors import CoinfleetError
from coinfleet.metrics import MetricRow
from coinfleet.service import coins
from coinfleet.service.schemas import CoinDetail
from coinfleet.ui import charts, context
from coinfleet.ui.layout import TAG_COLOURS, connected, error_box, frame
from coinfleet.ui.prediction_log import PredictionLog

#: windows before the coin's newest row (a replayed coin's data may be far from now)
WINDOWS: dict[str, timedelta | None] = {
    "15 min": timedelta(minutes=15),
    "1 h": timedelta(hours=1),
    "6 h": timedelta(hours=6),
    "24 h": timedelta(days=1),
    "all": None,
}
ROW_COLUMNS = (
    ("timestamp", "Time"), ("phase_id_at_time", "Phase"), ("price_open", "Open"),
    ("price_high", "High"), ("price_low", "Low"), ("price_close", "Close"),
    ("market_cap_close", "Market cap"), ("volume_sol", "Volume"), ("buy_volume_sol", "Buy vol"),
    ("sell_volume_sol", "Sell vol"), ("num_buys", "Buys"), ("num_sells", "Sells"),
    ("unique_wallets", "Wallets"),
)  # fmt: skip


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _row(row: MetricRow) -> dict[str, Any]:
    return {key: _cell(getattr(row, key)) for key, _ in ROW_COLUMNS}


class CoinView:
    """The window choice, the chart, a per-model summary and the metric rows."""

    def __init__(self, mint: str) -> None:
        self.mint = mint
        self.window = ui.toggle(list(WINDOWS), value="1 h", on_change=self.show).props(
            "data-testid=coin-window"
        )
        self.summary = ui.row().classes("gap-6")
        self.chart = ui.echart({}).classes("w-full h-[28rem]").props("data-testid=coin-chart")
        self.truncated = ui.label().classes("text-sm text-gray-500")
        columns = [{"name": k, "label": label, "field": k, "align": "left"} for k, label in ROW_COLUMNS]
        self.rows = ui.table(columns=columns, rows=[], row_key="timestamp", pagination=25)
        self.rows.classes("w-full").props("dense flat data-testid=metric-rows")

    async def _read(self) -> CoinDetail:
        db = context.pool()
        span = WINDOWS[self.window.value]
        newest = await coins.coin_detail(db, self.mint, since=None)
        if span is None or not newest.rows:
            return newest
        return await coins.coin_detail(db, self.mint, since=newest.rows[-1].timestamp - span)

    async def show(self) -> None:
        """Read the chosen window and draw it."""
        try:
            detail = await self._read()
        except CoinfleetError as exc:
            ui.notify(str(exc), type="negative")
            return
        self.chart.options.clear()
        self.chart.options.update(charts.coin_chart(detail))
        self.chart.update()
        self.summary.clear()
        with self.summary:
            ui.label(f"{len(detail.rows)} metric rows").props("data-testid=coin-row-count")
            for model in detail.models:
                tags = {t: sum(p.tag == t for p in model.predictions) for t in TAG_COLOURS}
                text = " · ".join(f"{t} {n}" for t, n in tags.items())
                ui.link(f"{model.model_name}: {text} · webhook alerts {len(model.alerts)}",
                        f"/models/{model.model_name}")  # fmt: skip
        self.truncated.set_text(
            "only the newest rows of this window are shown" if detail.rows_truncated else ""
        )
        self.rows.rows = [_row(r) for r in reversed(detail.rows)]
        self.rows.update()


@ui.page("/coins/{mint}")
async def coin_page(mint: str) -> None:
    """Coin detail."""
    with frame(f"Coin {mint}") as shown:
        if not shown:
            return
        if not mint.strip():
            error_box("no coin id given")
            return
        view = CoinView(mint)
        await connected()
        await view.show()
        ui.label("Predictions for this coin").classes("text-lg font-semibold")
        log = PredictionLog(mint=mint)
        await log.first_page()
