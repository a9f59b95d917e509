"""The settings editor accepts what the CLI accepts and puts each error under its field."""

from __future__ import annotations

import pytest

from coinfleet.models.settings import SETTING_KEYS, ModelSettings, apply_changes, parse_value
from coinfleet.ui.forms import FIELDS, check, display, service_error

CURRENT = ModelSettings(alert_threshold=0.8, coin_whitelist=["a"])


def untouched() -> dict[str, object]:
    return {f.key: display(CURRENT, f.key) for f in FIELDS}


def test_every_setting_is_editable() -> None:
    assert [f.key for f in FIELDS] == list(SETTING_KEYS)


def test_an_untouched_form_changes_nothing() -> None:
    result = check(CURRENT, untouched())
    assert result.errors == {} and result.changed == ()
    assert result.settings == CURRENT


@pytest.mark.parametrize(
    ("key", "text"),
    [("alert_threshold", "0.9"), ("phases", "1, 2"), ("coin_blacklist", "x,y"),
     ("max_staleness_seconds", "30"), ("webhook_url", "https://n8n.example/hook"),
     ("coin_whitelist", ""), ("weight", "2.5")],
)  # fmt: skip
def test_texts_parse_like_the_cli(key: str, text: str) -> None:
    result = check(CURRENT, {**untouched(), key: text})
    assert result.settings == apply_changes(CURRENT, {key: parse_value(key, text)})
    assert result.changed == (key,)


def test_switches_and_choices_are_values() -> None:
    form = {**untouched(), "send_modes": ["alerts_only", "negative_only"], "send_ignored": True,
            "coin_filter_mode": "blacklist"}  # fmt: skip
    result = check(CURRENT, form)
    assert result.settings is not None
    assert (result.settings.send_modes, result.settings.send_ignored) == (
        ["alerts_only", "negative_only"],
        True,
    )
    assert result.settings.coin_filter_mode == "blacklist"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [({"alert_threshold": "0.3"}, "alert_threshold", "greater than or equal to 0.5"),
     ({"alert_threshold": "high"}, "alert_threshold", "valid number"),
     ({"webhook_url": "ftp://x"}, "webhook_url", "http"),
     ({"phases": "[1,"}, "phases", "not valid JSON"),
     ({"send_modes": []}, "send_modes", "at least one"),
     ({"coin_filter_mode": "whitelist", "coin_whitelist": ""}, "coin_whitelist", "non-empty")],
)  # fmt: skip
def test_errors_land_on_their_field(changes: dict[str, object], field: str, words: str) -> None:
    result = check(CURRENT, {**untouched(), **changes})
    assert result.settings is None
    assert words in result.errors[field], result.errors


def test_a_service_error_goes_under_the_setting_it_names() -> None:
    refused = "webhook_url: webhook URL 'http://169.254.169.254/' resolves to 169.254.169.254, a cloud …"
    assert service_error(refused) == ("webhook_url", refused.removeprefix("webhook_url: "))
    assert service_error("model alpha was deleted") == ("", "model alpha was deleted")
    assert service_error("note: not a setting") == ("", "note: not a setting")
