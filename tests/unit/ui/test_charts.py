"""The coin chart: markers coloured by tag, evaluation windows of alerts, the highest and lowest reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from coinfleet.service.schemas import CoinDetail, CoinModel, Prediction, Tag
from coinfleet.ui import charts
from coinfleet.ui.live import Point

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def prediction(i: int, tag: Tag, *, price: float = 2.0, high: float | None = None) -> Prediction:
    at = T0 + timedelta(seconds=10 * i)
    return Prediction(
        id=i, model_id=1, model_name="m", model_version=1, mint="c", metric_ts=at,
        probability={"negative": 0.1, "positive": 0.6, "alert": 0.9}[tag], prediction=int(tag != "negative"),
        tag=tag, alert_threshold=0.7, target={}, evaluate_at=at + timedelta(minutes=5), phase_id=1,
        price_open=price, price_high=price, price_low=price, price_close=price, market_cap_close=30.0,
        volume_sol=1.0, created_at=at, state="waiting",
        max_change_pct=high, max_change_at=None if high is None else at + timedelta(seconds=30),
        min_change_pct=None, min_change_at=None, evaluation=None,
    )  # fmt: skip


def series(options: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in options["series"] if s["name"] == name)


def test_markers_windows_and_highs() -> None:
    predictions = [prediction(0, "negative"), prediction(1, "positive"), prediction(2, "alert", high=50.0)]
    predictions += [prediction(3 + i, "alert") for i in range(charts.MAX_WINDOWS + 5)]
    detail = CoinDetail(
        mint="c", since=None, until=None, rows=[], rows_truncated=False,
        models=[CoinModel(model_id=1, model_name="m", predictions=predictions, alerts=[])],
    )  # fmt: skip
    options = charts.coin_chart(detail)
    markers = series(options, "m")["data"]
    assert [m["itemStyle"]["color"] for m in markers[:3]] == [
        charts.TAG_COLOURS["negative"],
        charts.TAG_COLOURS["positive"],
        charts.TAG_COLOURS["alert"],
    ]
    windows = series(options, "price")["markArea"]["data"]
    assert len(windows) == charts.MAX_WINDOWS, "only the newest alerts' windows are drawn"
    newest = predictions[-1]
    assert windows[-1] == [
        {"xAxis": newest.metric_ts.timestamp() * 1000},
        {"xAxis": newest.evaluate_at.timestamp() * 1000},
    ]
    high = series(options, "m ATH")["data"]
    assert high == [[(T0 + timedelta(seconds=50)).timestamp() * 1000, 3.0]], "+50 % of the price 2.0"


def test_a_card_chart_spans_the_last_five_minutes_even_with_one_sample() -> None:
    one = [Point(at=1_000_000.0, events_per_second=None, lag_events=3, lag_seconds=0.5)]
    axis = charts.throughput_and_lag(one)["xAxis"]
    assert (axis["min"], axis["max"]) == ((1_000_000 - 300) * 1000, 1_000_000 * 1000)
    assert "min" not in charts.throughput_and_lag([])["xAxis"]
