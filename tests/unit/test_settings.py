"""The lanes' commit durability and the serving process's GC settings: read from COINFLEET_*, defaults
as before, bad values refused at start with the setting's name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coinfleet.config import Settings
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
