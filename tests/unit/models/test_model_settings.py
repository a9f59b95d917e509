"""`models set KEY=VALUE`: parsing, validation and clear errors."""

from __future__ import annotations

import pytest

from coinfleet.errors import SettingError
from coinfleet.models.settings import (
    ModelSettings,
    apply_changes,
    apply_to_stored,
    parse_assignments,
    stored_settings,
)


def test_values_are_parsed_by_field_type() -> None:
    changes = parse_assignments(
        ["alert_threshold=0.8", "phases=1,2", 'coin_whitelist=["a", "b"]', "webhook_url=none", "weight=4"]
    )
    new = apply_changes(ModelSettings(), changes)
    assert new.alert_threshold == 0.8
    assert new.phases == [1, 2]
    assert new.coin_whitelist == ["a", "b"]
    assert new.webhook_url is None
    assert new.weight == 4


def test_unknown_key_names_the_known_ones() -> None:
    with pytest.raises(SettingError, match=r"unknown setting 'treshold'.*alert_threshold"):
        parse_assignments(["treshold=0.8"])


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("alert_threshold=0.3", "alert_threshold"),
        ("alert_threshold=high", "alert_threshold"),
        ("weight=0", "weight"),
        ("ignore_bad_seconds=90000", "ignore_bad_seconds"),
        ("max_log_entries_alert=1001", "max_log_entries_alert"),
        ("send_modes=sometimes", "send_modes"),
        ("coin_filter_mode=whitelist", "whitelist"),
    ],
)
def test_bad_values_are_refused_with_the_key(pair: str, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        apply_changes(ModelSettings(), parse_assignments([pair]))


def test_not_an_assignment() -> None:
    with pytest.raises(SettingError, match="KEY=VALUE"):
        parse_assignments(["alert_threshold"])


def test_an_empty_phase_list_is_refused_with_what_to_type_instead() -> None:
    with pytest.raises(SettingError, match=r"empty phase list.*phases=none"):
        apply_changes(ModelSettings(), parse_assignments(["phases="]))
    assert apply_changes(ModelSettings(), parse_assignments(["phases=none"])).phases is None
    assert apply_changes(ModelSettings(), parse_assignments(["phases=2,1,2"])).phases == [1, 2]


def test_stored_settings_that_no_longer_validate_are_reported_not_raised() -> None:
    settings, error = stored_settings('{"alert_threshold": 7}')
    assert settings == ModelSettings()
    assert error is not None and "alert_threshold" in error
    assert stored_settings('{"weight": 2}') == (ModelSettings(weight=2), None)


def test_changes_repair_stored_settings_and_drop_keys_no_longer_known() -> None:
    repaired = apply_to_stored({"alert_threshold": 7, "retired_key": 1}, {"alert_threshold": 0.9})
    assert repaired.alert_threshold == 0.9
    with pytest.raises(SettingError, match="alert_threshold"):
        apply_to_stored({"alert_threshold": 7}, {"weight": 2})


@pytest.mark.parametrize("pairs", [["webhook_secret=s3cret"], ["weight=2", "webhook_secret=-"]])
def test_a_secret_on_the_command_line_is_refused_and_says_what_to_use(pairs: list[str]) -> None:
    with pytest.raises(SettingError, match="--from-file PATH") as refused:
        parse_assignments(pairs)
    assert "s3cret" not in str(refused.value)


def test_a_secret_among_changes_is_refused_and_settings_hold_none() -> None:
    with pytest.raises(SettingError, match="not a setting"):
        apply_changes(ModelSettings(), {"webhook_secret": "s3cret"})
    assert "secret" not in repr(ModelSettings()) and "webhook_secret" not in ModelSettings().public()
