"""ECharts options for every chart of the UI, built from plain values (no I/O, no NiceGUI)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from coinfleet.ui.live import Point

TAG_COLOURS: dict[str, str] = {"negative": "#64748b", "positive": "#f59e0b", "alert": "#dc2626"}
Options = dict[str, Any]


def _ms(at: datetime | float) -> float:
    """ECharts time axes take epoch milliseconds."""
    return (at.timestamp() if isinstance(at, datetime) else at) * 1000


def throughput_and_lag(points: Sequence[Point]) -> Options:
    """The small chart of an overview card: events/s (line) and lag in events (area), last minutes."""
    return {
        "animation": False,
        "grid": {"left": 40, "right": 40, "top": 20, "bottom": 20},
        "legend": {"data": ["events/s", "lag"], "top": 0, "textStyle": {"fontSize": 10}},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "time", "axisLabel": {"fontSize": 9}},
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
    predicted: Sequence[float], observed: Sequence[float | None], counts: Sequence[int]
) -> Options:
    """Mean predicted probability vs observed hit rate per bin, against the diagonal."""
    return {
        "animation": False,
        "legend": {"data": ["observed", "perfect"]},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "value", "min": 0, "max": 1, "name": "predicted"},
        "yAxis": {"type": "value", "min": 0, "max": 1, "name": "observed"},
        "series": [
            {"name": "perfect", "type": "line", "showSymbol": False, "lineStyle": {"type": "dashed"},
             "data": [[0, 0], [1, 1]]},
            {"name": "observed", "type": "line",
             "data": [[round(p, 4), None if o is None else round(o, 4), n]
                      for p, o, n in zip(predicted, observed, counts, strict=True)]},
        ],
    }  # fmt: skip
