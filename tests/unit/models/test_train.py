"""Training on a small synthetic market with a planted signal: labels, time split, artifacts, metrics."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import numpy as np
import pytest

from coinfleet.features.spec import DEFAULT_FEATURES, compute_features
from coinfleet.features.window import WINDOW_ROWS, window_from_rows
from coinfleet.metrics import MetricRow
from coinfleet.models.algorithms import export_model, fit_model
from coinfleet.models.bundle import ARTIFACT_SUFFIX
from coinfleet.models.dataset import build_dataset
from coinfleet.models.formats import detect_format, load_predictor
from coinfleet.models.train import (
    ALGORITHMS,
    Algorithm,
    TrainingError,
    evaluation_metrics,
    time_split,
    train_model,
)
from coinfleet.targets import TargetSpec

pytestmark = pytest.mark.usefixtures("one_thread")

T0 = datetime(2025, 6, 6, 16, 0, tzinfo=UTC)
UP10 = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=10.0)
#: features that read only optional columns, which the synthetic market leaves empty
OPTIONAL_ONLY = (
    "volatility_pct_avg_5",
    "buy_pressure_avg_5",
    "buy_pressure_trend_5",
    "whale_dominance_5",
    "whale_net_5",
    "dev_sold_flag",
    "unique_signer_ratio_avg_5",
)
PRESENT = tuple(name for name in DEFAULT_FEATURES if name not in OPTIONAL_ONLY)
#: fewer trees than the defaults keep the tests quick
FAST: dict[str, dict[str, Any]] = {name: {"n_estimators": 40} for name in ALGORITHMS}
FAST["hist_gradient_boosting"] = {"max_iter": 40}


def _bar(mint: str, ts: datetime, price: float, *, volume: float, buy_share: float) -> MetricRow:
    return MetricRow(
        mint=mint,
        timestamp=ts,
        phase_id_at_time=1,
        price_open=price,
        price_high=price * 1.003,
        price_low=price * 0.997,
        price_close=price,
        market_cap_close=price * 1e9,
        volume_sol=volume,
        buy_volume_sol=volume * buy_share,
        sell_volume_sol=volume * (1 - buy_share),
        num_buys=max(1, round(10 * volume * buy_share)),
        num_sells=round(10 * volume * (1 - buy_share)),
        unique_wallets=max(1, round(8 * volume)),
    )


def _coin(rng: np.random.Generator, mint: str, rows: int) -> list[MetricRow]:
    """A random walk (1 % per 10 s bar) where 6 bars of heavy buying come before four +4 % bars."""
    start = T0 + timedelta(seconds=float(rng.uniform(0, 1800)))
    price, phase, bars = 3e-8, 0, []  # phase > 4: accumulating, 1..4: pumping, 0: calm
    for i in range(rows):
        phase = 10 if phase == 0 and rng.random() < 0.04 else max(phase - 1, 0)
        price *= math.exp(0.04 if 0 < phase <= 4 else rng.normal(0, 0.01))
        accumulating = phase > 4
        volume = float(rng.uniform(0.5, 1.5)) * (3.0 if accumulating else 1.0)
        buy_share = 0.9 if accumulating else float(rng.uniform(0.3, 0.7))
        ts = start + timedelta(seconds=10 * i + float(rng.uniform(-2, 2)))
        bars.append(_bar(mint, ts, price, volume=volume, buy_share=buy_share))
    return bars


def _market(seed: int = 0, coins: int = 30, rows: int = 120) -> list[MetricRow]:
    rng = np.random.default_rng(seed)
    return [bar for c in range(coins) for bar in _coin(rng, f"coin{c}pump", rows)]


@pytest.fixture(scope="module")
def market() -> list[MetricRow]:
    """Thirty overlapping coins of 120 bars each."""
    return _market()


# --- training end to end ---


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_learns_the_planted_signal(algorithm: Algorithm, market: list[MetricRow]) -> None:
    model = train_model(market, algorithm=algorithm, target=UP10, params=FAST[algorithm])
    assert model.format == {"xgboost": "xgboost-json", "lightgbm": "lightgbm-text"}.get(algorithm, "skops")
    assert detect_format(f"model{ARTIFACT_SUFFIX[model.format]}") == model.format
    assert model.features == tuple(name for name in DEFAULT_FEATURES if name not in OPTIONAL_ONLY)
    assert model.metrics["dropped_features"] == list(OPTIONAL_ONLY)
    assert model.label_mode == "within"
    metrics = model.metrics
    expected = {
        "accuracy",
        "f1",
        "precision",
        "recall",
        "roc_auc",
        "mcc",
        "confusion_matrix",
        "positive_rate",
    }
    assert expected <= metrics.keys()
    assert {"n_train", "n_test", "simulated_profit_pct", "split_at"} <= metrics.keys()
    assert metrics["roc_auc"] > 0.8
    assert metrics["n_train"] == model.trained_rows
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n_test"]
    assert FAST[algorithm].items() <= model.params.items()
    json.dumps(model.to_bundle("m").metrics)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_metrics_are_those_of_the_exported_artifact(algorithm: Algorithm, market: list[MetricRow]) -> None:
    model = train_model(market, algorithm=algorithm, target=UP10, params=FAST[algorithm], seed=1)
    data = build_dataset(market, target=UP10, features=model.features, label_mode="within")
    split = time_split(data.t0, data.label_end)
    proba = load_predictor(model.format, model.artifact).predict_proba(data.x[split.test])
    again = evaluation_metrics(data.y[split.test], proba, data.change_pct[split.test])
    assert again == {
        k: v
        for k, v in model.metrics.items()
        if k not in ("n_train", "split_at", "dropped_features", "alert_rule")
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reloaded_artifact_reproduces_the_fitted_model(algorithm: Algorithm, market: list[MetricRow]) -> None:
    data = build_dataset(market, target=UP10, features=PRESENT, label_mode="within")
    fitted, _ = fit_model(algorithm, data.x, data.y, params=FAST[algorithm])
    fmt, artifact = export_model(algorithm, fitted)
    reloaded = load_predictor(fmt, artifact).predict_proba(data.x)
    np.testing.assert_allclose(reloaded, fitted.predict_proba(data.x)[:, 1], atol=1e-7)


def test_at_horizon_labels_and_a_classic_target_train(market: list[MetricRow]) -> None:
    at_horizon = train_model(
        market,
        algorithm="hist_gradient_boosting",
        target=UP10,
        label_mode="at_horizon",
        params=FAST["hist_gradient_boosting"],
    )
    assert at_horizon.label_mode == "at_horizon"
    classic = TargetSpec(kind="classic", horizon_seconds=60, variable="volume_sol", operator=">", value=4.0)
    model = train_model(market, algorithm="lightgbm", target=classic, params=FAST["lightgbm"])
    assert model.metrics["simulated_profit_pct"] is None
    assert model.metrics["roc_auc"] is not None


# --- dataset and split ---


def test_time_split_leaves_a_horizon_gap_and_no_overlap(market: list[MetricRow]) -> None:
    data = build_dataset(market, target=UP10, features=DEFAULT_FEATURES, label_mode="within")
    split = time_split(data.t0, data.label_end)
    assert not np.any(split.train & split.test)
    assert data.t0[split.test].min() == split.split_at
    assert data.label_end[split.train].max() < split.split_at
    assert data.t0[split.train].max() + UP10.horizon_seconds <= split.split_at
    assert 0.2 < split.test.mean() < 0.4
    assert (~split.train & ~split.test).sum() > 0  # the rows whose label would read the test period


def test_labels_come_from_the_real_future_path() -> None:
    prices = [1.0, 1.0, 1.2, 1.2, 1.0, 0.95, 1.1, 1.0]
    bars = [
        _flat(_bar("a", T0 + timedelta(seconds=30 * i), p, volume=1.0, buy_share=0.5))
        for i, p in enumerate(prices)
    ]
    within = build_dataset(bars, target=UP10, features=["last_close"], label_mode="within")
    assert within.y.tolist() == [1, 1, 0, 0, 1, 1]  # the last two rows have no row after their horizon
    np.testing.assert_array_equal(within.x[:, 0], prices[:6])
    at_end = build_dataset(bars, target=UP10, features=["last_close"], label_mode="at_horizon")
    assert at_end.y.tolist() == [1, 1, 0, 0, 1, 0]


def _flat(bar: MetricRow) -> MetricRow:
    """The bar with high = low = close."""
    fields: dict[str, Any] = {name: getattr(bar, name) for name in MetricRow.__dataclass_fields__}
    fields.update(price_high=bar.price_close, price_low=bar.price_close)
    return MetricRow(**fields)


def test_dataset_features_equal_what_serving_computes(market: list[MetricRow]) -> None:
    coin = sorted((bar for bar in market if bar.mint == "coin3pump"), key=lambda bar: bar.timestamp)
    data = build_dataset(coin, target=UP10, features=DEFAULT_FEATURES, label_mode="within")
    by_time = {bar.timestamp.timestamp(): i for i, bar in enumerate(coin)}
    for row, t0 in enumerate(data.t0.tolist()):
        i = by_time[t0]
        served = window_from_rows(coin[max(0, i + 1 - WINDOW_ROWS) : i + 1], first_seen=coin[0].timestamp)
        np.testing.assert_array_equal(compute_features(served, DEFAULT_FEATURES), data.x[row])


def test_row_order_and_repeated_rows_do_not_matter(market: list[MetricRow]) -> None:
    shuffled = [*market, *market[:50]]
    random.Random(0).shuffle(shuffled)
    first = build_dataset(market, target=UP10, features=DEFAULT_FEATURES, label_mode="within")
    again = build_dataset(shuffled, target=UP10, features=DEFAULT_FEATURES, label_mode="within")
    order_first, order_again = np.lexsort((first.x[:, -1], first.t0)), np.lexsort((again.x[:, -1], again.t0))
    np.testing.assert_array_equal(first.x[order_first], again.x[order_again])
    np.testing.assert_array_equal(first.y[order_first], again.y[order_again])


def test_a_feature_missing_everywhere_is_left_out(market: list[MetricRow]) -> None:
    model = train_model(
        market,
        algorithm="xgboost",
        target=UP10,
        features=["whale_net_5", "buy_volume_share_5"],
        params=FAST["xgboost"],
    )
    assert model.features == ("buy_volume_share_5",)
    assert model.metrics["dropped_features"] == ["whale_net_5"]
    assert load_predictor(model.format, model.artifact).n_features == 1
    with pytest.raises(TrainingError, match="every feature is missing"):
        train_model(market, algorithm="xgboost", target=UP10, features=["whale_net_5"])


# --- refusals ---


def test_too_few_rows_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="too little labelled data"):
        train_model(_market(coins=2, rows=20), algorithm="xgboost", target=UP10)


def test_a_single_class_is_a_clear_error(market: list[MetricRow]) -> None:
    never = TargetSpec(kind="change", horizon_seconds=60, direction="up", change_percent=500.0)
    with pytest.raises(TrainingError, match="every train row has label 0"):
        train_model(market, algorithm="xgboost", target=never)


def test_no_rows_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="no rows"):
        train_model([], algorithm="xgboost", target=UP10)


def test_unknown_algorithm_and_feature_are_refused(market: list[MetricRow]) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'svm'"):
        train_model(market, algorithm="svm", target=UP10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="moon_score"):
        train_model(market, algorithm="xgboost", target=UP10, features=["moon_score"])


def test_algorithm_names_match_the_literal() -> None:
    assert set(get_args(Algorithm)) == set(ALGORITHMS)
