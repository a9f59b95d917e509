"""A trained model's alert threshold comes from its validation predictions and alerts rarely on new data."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coinfleet.demo import LIVE_LAUNCH_WINDOW, YOUNG_SECONDS, DemoOptions, training_rows
from coinfleet.features.spec import compute_matrix
from coinfleet.features.window import WINDOW_ROWS, windows_from_history
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.metrics import MetricRow
from coinfleet.models.dataset import _by_coin, build_dataset
from coinfleet.models.formats import load_predictor
from coinfleet.models.threshold import ALERT_SHARE, threshold_for_share
from coinfleet.models.train import TRAIN_FRACTION, TrainedModel, time_split, train_model
from coinfleet.targets import TargetSpec

DOWN1 = TargetSpec(kind="change", direction="down", change_percent=1, horizon_seconds=60)
FloatArray = npt.NDArray[np.float64]


@given(
    arrays(np.float64, st.integers(1, 300), elements=st.floats(0, 1)),
    st.sampled_from([0.0, 0.01, 0.05, 0.2]),
)
def test_at_most_the_share_alerts_and_the_threshold_is_in_the_settings_range(
    probabilities: FloatArray, share: float
) -> None:
    threshold = threshold_for_share(probabilities, share)
    assert 0.5 <= threshold <= 1.0
    if threshold > 0.5:  # not held up by the range: the share is met
        assert np.mean(probabilities >= threshold) <= share or threshold == 1.0


def test_the_threshold_is_the_lowest_that_keeps_to_the_share() -> None:
    probabilities = np.linspace(0.0, 0.99, 100)  # 0.00, 0.01, …, 0.99
    threshold = threshold_for_share(probabilities, 0.05)
    assert np.sum(probabilities >= threshold) == 5 and 0.94 < threshold <= 0.9501


def _probabilities(model: TrainedModel, rows: list[MetricRow]) -> FloatArray:
    """The model's P(1) at every row of every coin up to YOUNG_SECONDS old, as serving scores them."""
    windows = [
        window
        for coin in _by_coin(rows)
        for window in windows_from_history(coin, WINDOW_ROWS)
        if window.t[-1] - coin[0].timestamp.timestamp() <= YOUNG_SECONDS
    ]
    return load_predictor(model.format, model.artifact).predict_proba(compute_matrix(windows, model.features))


def test_a_demo_model_alerts_on_a_small_share_of_its_validation_and_of_new_markets() -> None:
    rows = training_rows(DemoOptions(duration=None, data_rows=None, data_key="test", coins=30))
    model = train_model(rows, algorithm="xgboost", target=DOWN1, max_age_seconds=YOUNG_SECONDS)
    data = build_dataset(rows, target=DOWN1, features=model.features, label_mode="within")
    split = time_split(data.t0, data.label_end, train_fraction=TRAIN_FRACTION)
    validation_rows = data.x[split.test & (data.age <= YOUNG_SECONDS)]
    validation = load_predictor(model.format, model.artifact).predict_proba(validation_rows)
    assert model.alert_threshold == threshold_for_share(validation, ALERT_SHARE), "from the validation data"
    assert model.metrics["alert_rule"]["validation_share"] <= ALERT_SHARE
    assert model.to_bundle("m").alert_threshold == model.alert_threshold
    assert model.to_bundle("m", alert_threshold=0.9).alert_threshold == 0.9, "an explicit one overrides it"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for seed in (1, 2, 3):  # markets like the demo's live one, none of them trained on
        config = SimulatorConfig(coins=30, seed=seed, launch_window_seconds=LIVE_LAUNCH_WINDOW)
        held_out = _probabilities(model, MarketSimulator(config, start).history(300))
        assert np.mean(held_out >= model.alert_threshold) <= 2 * ALERT_SHARE
        assert np.mean(held_out >= 0.5) > 4 * ALERT_SHARE, "where a fixed 0.5 alerts far more often"
