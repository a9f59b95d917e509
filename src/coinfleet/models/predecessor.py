"""The predecessor's rows in coinfleet's terms: a model's settings, and its predictions with their outcomes.

Pure: a row (any mapping of column → value, as its tables hold them, with their drift) in, values out.
What cannot be carried over as it is comes back as a note for the move-over's report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from coinfleet.models.settings import ModelSettings
from coinfleet.targets import TargetSpec

#: the predecessor's tag → coinfleet's
TAGS = {"negativ": "negative", "positiv": "positive", "alert": "alert"}
#: its per-model settings columns → coinfleet's setting names (same meaning)
_SAME_SETTINGS = {
    "ignore_bad_seconds": "ignore_bad_seconds",
    "ignore_positive_seconds": "ignore_positive_seconds",
    "ignore_alert_seconds": "ignore_alert_seconds",
    "max_log_entries_per_coin_negative": "max_log_entries_negative",
    "max_log_entries_per_coin_positive": "max_log_entries_positive",
    "max_log_entries_per_coin_alert": "max_log_entries_alert",
    "n8n_webhook_url": "webhook_url",
    "send_ignored_to_n8n": "send_ignored",
}
#: columns of a history row, in the order of `history_row`'s tuple (the move-over's temporary table)
HISTORY_COLUMNS: tuple[str, ...] = (
    "predecessor_id",
    "mint",
    "metric_ts",
    "evaluate_at",
    "probability",
    "prediction",
    "tag",
    "phase_id",
    "price_open",
    "price_high",
    "price_low",
    "price_close",
    "market_cap_close",
    "volume_sol",
    "status",
    "price_at_horizon",
    "change_at_horizon_pct",
    "reached_at_horizon",
    "hit_within",
    "max_change_pct",
    "max_change_at",
    "min_change_pct",
    "min_change_at",
    "result_at_horizon",
    "result_within",
    "evaluated_at",
)


@dataclass(frozen=True, kw_only=True)
class CarriedSettings:
    """A model's settings as coinfleet takes them, with notes on what changed on the way."""

    settings: ModelSettings
    notes: tuple[str, ...]


def settings_from_row(row: Mapping[str, Any]) -> CarriedSettings:
    """The settings of a `prediction_active_models` row; values coinfleet refuses are noted, not guessed."""
    values: dict[str, Any] = {
        ours: _plain(row.get(theirs))
        for theirs, ours in _SAME_SETTINGS.items()
        if row.get(theirs) is not None
    }
    notes: list[str] = []
    threshold = row.get("alert_threshold")
    if threshold is not None:
        values["alert_threshold"] = max(float(threshold), 0.5)
        if float(threshold) < 0.5:
            notes.append(f"alert_threshold {float(threshold):g} is below 0.5; set to 0.5")
    values["webhook_enabled"] = row.get("n8n_enabled") is not False  # NULL meant enabled
    values["send_modes"] = send_modes(row.get("n8n_send_mode"))
    values.update(_coin_filter(row, notes))
    phases = _json(row.get("phases"))
    if phases:
        values["phases"] = [int(p) for p in phases]
    # the predecessor exposed min_scan_interval_seconds but scored every poll regardless: keep that
    values["min_scan_interval_seconds"] = 0.0
    if row.get("min_scan_interval_seconds"):
        notes.append(
            f"min_scan_interval_seconds={row['min_scan_interval_seconds']} was never applied by the "
            "predecessor; set to 0 to score as before (`models set NAME min_scan_interval_seconds=…`)"
        )
    return _validated(values, notes)


def _validated(values: dict[str, Any], notes: list[str]) -> CarriedSettings:
    try:
        return CarriedSettings(settings=ModelSettings.model_validate(values), notes=tuple(notes))
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        notes.append(f"settings {', '.join(sorted(bad))} were invalid ({_first(exc)}); defaults used")
        kept = {k: v for k, v in values.items() if k not in bad}
        return CarriedSettings(settings=ModelSettings.model_validate(kept), notes=tuple(notes))


def _coin_filter(row: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    if row.get("coin_filter_mode") != "whitelist":
        return {}
    coins = [str(c) for c in _json(row.get("coin_whitelist")) or []]
    if not coins:
        notes.append("coin_filter_mode=whitelist with an empty whitelist; every coin is scored")
        return {}
    return {"coin_filter_mode": "whitelist", "coin_whitelist": coins}


def send_modes(value: Any) -> list[str]:
    """n8n_send_mode as a list: a JSONB array, a JSON text, or the old single word."""
    parsed = _json(value)
    modes = [parsed] if isinstance(parsed, str) else list(parsed or [])
    return [str(m) for m in modes] or ["all"]


def history_row(row: Mapping[str, Any], target: TargetSpec) -> tuple[Any, ...]:
    """A `model_predictions` row as the values of HISTORY_COLUMNS (its outcome, if it has one)."""
    result = row.get("evaluation_result")
    prediction = int(row["prediction"])
    change = _float(row.get("actual_price_change_pct"))
    high, low = _float(row.get("ath_highest_pct")), _float(row.get("ath_lowest_pct"))
    hit = _hit_within(target, high, low)
    return (
        int(row["id"]),
        str(row["coin_id"]),
        row["prediction_timestamp"],
        row["evaluation_timestamp"],
        min(max(float(row["probability"]), 0.0), 1.0),
        prediction,
        TAGS.get(str(row.get("tag")), "positive" if prediction else "negative"),
        row.get("phase_id_at_prediction"),
        *(_float(row.get(f"price_{p}_at_prediction")) for p in ("open", "high", "low", "close")),
        _float(row.get("market_cap_at_prediction")),
        _float(row.get("volume_at_prediction")),
        None if result is None else ("no_data" if result == "not_applicable" else "ok"),
        _float(row.get("price_close_at_evaluation")),
        change,
        _reached(target, change),
        hit,
        high,
        row.get("ath_highest_timestamp"),
        low,
        row.get("ath_lowest_timestamp"),
        result,
        _judged(prediction, hit) if result is not None else None,
        _when(row.get("evaluated_at"), row.get("updated_at")),
    )


def _reached(target: TargetSpec, change: float | None) -> bool | None:
    if change is None or target.kind != "change" or target.change_percent is None:
        return None
    return change >= target.change_percent if target.direction == "up" else change <= -target.change_percent


def _hit_within(target: TargetSpec, high: float | None, low: float | None) -> bool | None:
    if target.kind != "change" or target.change_percent is None:
        return None
    extreme = high if target.direction == "up" else (None if low is None else -low)
    return None if extreme is None else extreme >= target.change_percent


def _judged(prediction: int, hit: bool | None) -> str:
    """Prediction 1 succeeds when the target was hit, prediction 0 when it was not."""
    if hit is None:
        return "not_applicable"
    return "success" if hit == bool(prediction) else "failed"


def _when(*candidates: datetime | None) -> datetime | None:
    return next((c for c in candidates if c is not None), None)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | bool | int | float) else float(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _first(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"])
