"""The predecessor's rows in coinfleet's terms: settings with notes, history rows with their outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from coinfleet.models.predecessor import HISTORY_COLUMNS, history_row, send_modes, settings_from_row
from coinfleet.targets import TargetSpec

UP = TargetSpec(kind="change", direction="up", change_percent=5, horizon_seconds=600)
DOWN = TargetSpec(kind="change", direction="down", change_percent=5, horizon_seconds=600)
T = datetime(2025, 6, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ["all"]), ('["alerts_only"]', ["alerts_only"]), ("alerts_only", ["alerts_only"]), ("[]", ["all"]),
     (["negative_only", "all"], ["negative_only", "all"])],
)  # fmt: skip
def test_send_modes_in_every_shape_it_had(value: object, expected: list[str]) -> None:
    assert send_modes(value) == expected


def test_values_coinfleet_refuses_are_noted_not_guessed() -> None:
    carried = settings_from_row(
        {"alert_threshold": Decimal("0.3"), "coin_filter_mode": "whitelist", "coin_whitelist": "[]",
         "n8n_webhook_url": "ftp://example.com", "min_scan_interval_seconds": 0}
    )  # fmt: skip
    assert carried.settings.alert_threshold == 0.5
    assert carried.settings.coin_filter_mode == "all"
    assert carried.settings.webhook_url is None
    notes = " | ".join(carried.notes)
    assert "below 0.5" in notes and "empty whitelist" in notes and "webhook_url" in notes
    assert "min_scan_interval_seconds" not in notes  # 0 there is 0 here: nothing changed


def _row(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": 1, "coin_id": "Mint", "prediction_timestamp": T, "evaluation_timestamp": T,
        "probability": Decimal("0.8100"), "prediction": 1, "tag": "alert",
    }  # fmt: skip
    return {**base, **values}


def _outcome(row: dict[str, object], target: TargetSpec) -> dict[str, object]:
    return dict(zip(HISTORY_COLUMNS, history_row(row, target), strict=True))


def test_an_open_prediction_has_no_outcome() -> None:
    values = _outcome(_row(), UP)
    assert values["tag"] == "alert" and values["probability"] == 0.81
    assert (
        values["status"] is None and values["result_at_horizon"] is None and values["result_within"] is None
    )


@pytest.mark.parametrize(
    ("target", "prediction", "high", "low", "within"),
    [(UP, 1, 6.0, -1.0, "success"), (UP, 1, 4.0, -1.0, "failed"), (UP, 0, 4.0, -1.0, "success"),
     (DOWN, 1, 9.0, -5.0, "success"), (DOWN, 0, 9.0, -6.0, "failed"), (UP, 1, None, None, "not_applicable")],
)  # fmt: skip
def test_within_the_horizon_is_judged_from_its_ath(
    target: TargetSpec, prediction: int, high: float | None, low: float | None, within: str
) -> None:
    row = _row(prediction=prediction, tag="negativ", evaluation_result="failed", actual_price_change_pct=-5,
               ath_highest_pct=high, ath_lowest_pct=low)  # fmt: skip
    values = _outcome(row, target)
    assert values["result_within"] == within
    assert (
        values["result_at_horizon"] == "failed" and values["status"] == "ok" and values["tag"] == "negative"
    )
    assert values["reached_at_horizon"] is (target.direction == "down")
