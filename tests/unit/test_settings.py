"""The lanes' commit durability and the serving process's GC settings: read from COINFLEET_*, defaults
as before, bad values refused at start with one clear line: the variable, its value, what is wrong and
what it accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coinfleet.config import Settings, settings_error_message
from coinfleet.lanes.starter import lane_server_settings


def test_defaults_keep_the_tuned_values() -> None:
    settings = Settings()
    assert settings.lane_synchronous_commit == "off"
    assert settings.gc_thresholds == (50_000, 20, 100)
    assert settings.gc_freeze is True


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINFLEET_LANE_SYNCHRONOUS_COMMIT", "on")
    monkeypatch.setenv("COINFLEET_GC_THRESHOLDS", "[700, 10, 10]")
    monkeypatch.setenv("COINFLEET_GC_FREEZE", "false")
    settings = Settings()
    assert lane_server_settings(settings.lane_synchronous_commit)["synchronous_commit"] == "on"
    assert settings.gc_thresholds == (700, 10, 10)
    assert settings.gc_freeze is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COINFLEET_LANE_SYNCHRONOUS_COMMIT", "sometimes"),
        ("COINFLEET_GC_THRESHOLDS", "[0, 10, 10]"),
        ("COINFLEET_GC_THRESHOLDS", "[700, 10]"),
        ("COINFLEET_GC_FREEZE", "perhaps"),
    ],
)
def test_a_bad_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("COINFLEET_").lower()):
        Settings()


@pytest.mark.parametrize(
    ("name", "value", "wrong", "expected"),
    [
        ("COINFLEET_GC_THRESHOLDS", "[0, 10, 10]", "value 1: input should be greater than 0", "list of 3"),
        ("COINFLEET_GC_THRESHOLDS", "[700, 10]", "value 3 is missing", "each integer > 0"),
        ("COINFLEET_GC_THRESHOLDS", "700", "not a list", "default [50000, 20, 100]"),
        ("COINFLEET_GC_THRESHOLDS", "[a, 1, 2]", "not a JSON list", "default [50000, 20, 100]"),
        ("COINFLEET_LANE_SYNCHRONOUS_COMMIT", "sometimes", "input should be", "off|local|remote_write"),
        (
            "COINFLEET_POLL_INTERVAL_SECONDS",
            "0",
            "input should be greater than 0",
            "number > 0, <= 60, default 2.0",
        ),
        ("COINFLEET_GC_FREEZE", "perhaps", "input should be a valid boolean", "boolean, default true"),
    ],
)
def test_the_message_names_the_variable_its_value_and_what_it_accepts(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, wrong: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = settings_error_message(caught.value)
    assert message.startswith(f"{name}={value!r}: {wrong}")
    assert expected in message.partition("; expected ")[2]
    assert message.endswith(f"fix or unset {name} (environment or .env)")


def test_every_bad_setting_is_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINFLEET_GC_THRESHOLDS", "[0, 0, 0]")
    monkeypatch.setenv("COINFLEET_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = settings_error_message(caught.value)
    assert message.endswith("fix or unset COINFLEET_LOG_LEVEL/COINFLEET_GC_THRESHOLDS (environment or .env)")
    assert message.count("COINFLEET_GC_THRESHOLDS=") == 1 and "COINFLEET_GC_THRESHOLDS.0" not in message
