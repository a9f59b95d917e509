"""ECharts options for every chart of the UI, built from plain values (no I/O, no NiceGUI)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from coinfleet.service.schemas import CoinDetail, CoinModel, Prediction
from coinfleet.ui.live import Point

TAG_COLOURS: dict[str, str] = {"negative": "#64748b", "positive": "#f59e0b", "alert": "#dc2626"}
Options = dict[str, Any]


def _ms(at: datetime | float) -> float:
    """ECharts time axes take epoch milliseconds."""
    return (at.timestamp() if isinstance(at, datetime) else at) * 1000


#: the span of an overview card's chart: the samples the overview keeps (150, one per 2 s)
CARD_CHART_SECONDS = 300


def throughput_and_lag(points: Sequence[Point]) -> Options:
    """The small chart of an overview card: events/s (line) and lag in events (area) over the last
    CARD_CHART_SECONDS up to the newest sample (with one sample or none, the axis still spans minutes)."""
    newest = points[-1].at if points else None
    span = {} if newest is None else {"min": _ms(newest - CARD_CHART_SECONDS), "max": _ms(newest)}
    return {
        "animation": False,
        "grid": {"left": 40, "right": 40, "top": 20, "bottom": 20},
        "legend": {"data": ["events/s", "lag"], "top": 0, "textStyle": {"fontSize": 10}},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "time", "axisLabel": {"fontSize": 9}, **span},
        "yAxis": [
            {"type": "value", "name": "", "axisLabel": {"fontSize": 9}, "minInterval": 1},
            {"type": "value", "name": "", "axisLabel": {"fontSize": 9}, "minInterval": 1},
        ],
        "series": [
            {
                "name": "events/s",
                "type": "line",
                "showSymbol": False,
                "data": [[_ms(p.at), p.events_per_second] for p in points],
            },
            {
                "name": "lag",
                "type": "line",
                "yAxisIndex": 1,
                "showSymbol": False,
                "areaStyle": {"opacity": 0.2},
                "data": [[_ms(p.at), p.lag_events] for p in points],
            },
        ],
    }


def _percent_points(buckets: Sequence[datetime], rates: Sequence[float | None]) -> list[list[float | None]]:
    return [[_ms(b), None if r is None else round(r * 100, 2)] for b, r in zip(buckets, rates, strict=True)]


def hit_rate_over_time(
    buckets: Sequence[datetime], at_horizon: Sequence[float | None], within: Sequence[float | None]
) -> Options:
    """Hit rate per time bucket by both outcome rules (fractions shown as percentages)."""
    return {
        "animation": False,
        "legend": {"data": ["at horizon end", "within horizon"]},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "min": 0, "max": 100, "name": "hit rate %"},
        "series": [
            {"name": name, "type": "line", "connectNulls": False, "data": _percent_points(buckets, rates)}
            for name, rates in (("at horizon end", at_horizon), ("within horizon", within))
        ],
    }  # fmt: skip


def probability_histogram(edges: Sequence[float], counts_by_tag: Mapping[str, Sequence[int]]) -> Options:
    """Stacked bars of predictions per probability bin, coloured by tag."""
    labels = [f"{lo:.2f}–{hi:.2f}" for lo, hi in itertools.pairwise(edges)]
    return {
        "animation": False,
        "legend": {"data": list(counts_by_tag)},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": labels, "name": "probability"},
        "yAxis": {"type": "value", "name": "predictions"},
        "series": [
            {"name": tag, "type": "bar", "stack": "p", "itemStyle": {"color": TAG_COLOURS.get(tag)},
             "data": list(counts)}
            for tag, counts in counts_by_tag.items()
        ],
    }  # fmt: skip


def calibration(
    predicted: Sequence[float],
    observed: Sequence[float | None],
    counts: Sequence[int],
    validation: Sequence[tuple[float, float, int]] = (),
) -> Options:
    """Mean predicted probability vs observed hit rate per bin, against the diagonal; `validation` is the
    same (mean p, hit rate, count) on the training's validation split, drawn beside it when given."""
    return {
        "animation": False,
        "legend": {"data": ["observed", "validation", "perfect"]},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "value", "min": 0, "max": 1, "name": "predicted"},
        "yAxis": {"type": "value", "min": 0, "max": 1, "name": "observed"},
        "series": [
            {"name": "perfect", "type": "line", "showSymbol": False, "lineStyle": {"type": "dashed"},
             "data": [[0, 0], [1, 1]]},
            {"name": "observed", "type": "line",
             "data": [[round(p, 4), None if o is None else round(o, 4), n]
                      for p, o, n in zip(predicted, observed, counts, strict=True)]},
            {"name": "validation", "type": "line", "lineStyle": {"type": "dotted"},
             "data": [[round(p, 4), round(o, 4), n] for p, o, n in validation]},
        ],
    }  # fmt: skip


MODEL_SYMBOLS = ("circle", "diamond", "triangle", "rect", "roundRect", "arrow")
#: most evaluation windows drawn in one coin chart (the newest alert predictions')
MAX_WINDOWS = 20


def _marker(p: Prediction) -> dict[str, Any]:
    return {
        "value": [_ms(p.metric_ts), p.price_close, p.probability],
        "itemStyle": {"color": TAG_COLOURS.get(p.tag)},
        "name": p.tag,
    }


def _reached(p: Prediction, change: float | None, at: datetime | None) -> list[float] | None:
    if change is None or at is None or p.price_close is None:
        return None
    return [_ms(at), p.price_close * (1 + change / 100)]


def _windows(models: Sequence[CoinModel]) -> list[list[dict[str, Any]]]:
    alerts = sorted((p for m in models for p in m.predictions if p.tag == "alert"), key=lambda p: p.metric_ts)
    return [[{"xAxis": _ms(p.metric_ts)}, {"xAxis": _ms(p.evaluate_at)}] for p in alerts[-MAX_WINDOWS:]]


def _model_series(index: int, model: CoinModel) -> list[Options]:
    symbol = MODEL_SYMBOLS[index % len(MODEL_SYMBOLS)]
    alerts = [p for p in model.predictions if p.tag == "alert"]
    highs = [point for p in alerts if (point := _reached(p, p.max_change_pct, p.max_change_at))]
    lows = [point for p in alerts if (point := _reached(p, p.min_change_pct, p.min_change_at))]
    sent = {a.metric_ts for a in model.alerts}
    return [
        {"name": model.model_name, "type": "scatter", "symbol": symbol, "symbolSize": 9, "z": 5,
         "data": [_marker(p) for p in model.predictions]},
        {"name": f"{model.model_name} ATH", "type": "scatter", "symbol": "triangle", "symbolSize": 7,
         "itemStyle": {"color": "#16a34a"}, "data": highs},
        {"name": f"{model.model_name} min", "type": "scatter", "symbol": "triangle", "symbolRotate": 180,
         "symbolSize": 7, "itemStyle": {"color": "#7c3aed"}, "data": lows},
        {"name": f"{model.model_name} webhook", "type": "scatter", "symbol": "pin", "symbolSize": 14,
         "itemStyle": {"color": "#dc2626"},
         "data": [[_ms(p.metric_ts), p.price_close] for p in model.predictions if p.metric_ts in sent]},
    ]  # fmt: skip


def coin_chart(detail: CoinDetail) -> Options:
    """Price and market cap over the window, every model's predictions coloured by tag, webhook alerts as
    pins, alert predictions' evaluation windows as shaded bands, and the highest/lowest price they reached."""
    price = {
        "name": "price", "type": "line", "showSymbol": False, "lineStyle": {"width": 1.5},
        "data": [[_ms(r.timestamp), r.price_close] for r in detail.rows],
        "markArea": {"silent": True, "itemStyle": {"color": "rgba(220, 38, 38, 0.03)"},
                     "data": _windows(detail.models)},
    }  # fmt: skip
    cap = {
        "name": "market cap", "type": "line", "yAxisIndex": 1, "showSymbol": False,
        "lineStyle": {"width": 1, "type": "dotted"},
        "data": [[_ms(r.timestamp), r.market_cap_close] for r in detail.rows],
    }  # fmt: skip
    series = [price, cap, *(s for i, m in enumerate(detail.models) for s in _model_series(i, m))]
    return {
        "animation": False,
        "legend": {"type": "scroll", "data": ["price", "market cap", *(m.model_name for m in detail.models)]},
        "tooltip": {"trigger": "item"},
        "dataZoom": [{"type": "inside"}, {"type": "slider", "height": 18}],
        "grid": {"left": 70, "right": 70, "top": 40, "bottom": 60},
        "xAxis": {"type": "time"},
        "yAxis": [
            {"type": "value", "name": "price (SOL)", "scale": True},
            {"type": "value", "name": "market cap (SOL)", "scale": True, "splitLine": {"show": False}},
        ],
        "series": series,
    }
