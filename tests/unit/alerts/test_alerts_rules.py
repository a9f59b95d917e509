"""Send rules and retry policy, each with a case that fails if the rule were wrong."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.alerts.rules import (
    ALERT,
    NEGATIVE,
    POSITIVE,
    RetryPolicy,
    Verdict,
    mode_matches,
    route,
    verdict,
    webhook_url,
)
from coinfleet.errors import SettingError
from coinfleet.lanes.rules import Tag
from coinfleet.models.settings import ModelSettings, SendMode, apply_changes

OWN = "https://n8n.example.com/webhook/own"
DEFAULT = "https://n8n.example.com/webhook/default"


def settings(**changes: Any) -> ModelSettings:
    return ModelSettings.model_validate({"webhook_url": OWN, **changes})


def test_tag_names_match_the_lanes_tags() -> None:
    assert (Tag.NEGATIVE.value, Tag.POSITIVE.value, Tag.ALERT.value) == (NEGATIVE, POSITIVE, ALERT)


@pytest.mark.parametrize(
    ("modes", "tag", "sent"),
    [
        (["all"], NEGATIVE, True),
        (["all"], POSITIVE, True),
        (["all"], ALERT, True),
        (["alerts_only"], ALERT, True),
        (["alerts_only"], POSITIVE, False),
        (["alerts_only"], NEGATIVE, False),
        (["positive_only"], POSITIVE, True),
        (["positive_only"], ALERT, False),  # positive_only excludes alerts
        (["positive_only"], NEGATIVE, False),
        (["negative_only"], NEGATIVE, True),
        (["negative_only"], POSITIVE, False),
        (["negative_only"], ALERT, False),
        (["alerts_only", "negative_only"], ALERT, True),  # modes combine with OR
        (["alerts_only", "negative_only"], NEGATIVE, True),
        (["alerts_only", "negative_only"], POSITIVE, False),
        (["positive_only", "alerts_only"], POSITIVE, True),
        (["positive_only", "alerts_only"], ALERT, True),
    ],
)
def test_send_modes(modes: list[SendMode], tag: str, sent: bool) -> None:
    assert mode_matches(modes, tag) is sent
    assert (route(settings(send_modes=modes), None, tag=tag, suppressed=False) is not None) is sent


def test_own_url_wins_over_the_default() -> None:
    assert webhook_url(settings(), DEFAULT) == OWN
    assert route(settings(), DEFAULT, tag=ALERT, suppressed=False) == OWN


def test_default_url_is_the_fallback() -> None:
    assert route(settings(webhook_url=None), DEFAULT, tag=ALERT, suppressed=False) == DEFAULT


def test_no_url_anywhere_sends_nothing() -> None:
    assert route(settings(webhook_url=None), None, tag=ALERT, suppressed=False) is None


def test_disabled_webhook_sends_nothing_even_with_a_default() -> None:
    disabled = settings(webhook_enabled=False)
    assert route(disabled, DEFAULT, tag=ALERT, suppressed=False) is None


def test_suppressed_predictions_go_out_only_with_send_ignored() -> None:
    assert route(settings(send_ignored=False), None, tag=ALERT, suppressed=True) is None
    assert route(settings(send_ignored=True), None, tag=ALERT, suppressed=True) == OWN
    assert route(settings(send_ignored=False), None, tag=ALERT, suppressed=False) == OWN


def test_send_ignored_still_respects_send_modes() -> None:
    only_alerts = settings(send_ignored=True, send_modes=["alerts_only"])
    assert route(only_alerts, None, tag=NEGATIVE, suppressed=True) is None
    assert route(only_alerts, None, tag=ALERT, suppressed=True) == OWN


@pytest.mark.parametrize(
    "url", ["ftp://n8n.example.com/x", "file:///etc/passwd", "n8n.example.com/hook", "http://"]
)
def test_webhook_url_setting_needs_http_or_https(url: str) -> None:
    with pytest.raises(SettingError, match="webhook_url"):
        apply_changes(ModelSettings(), {"webhook_url": url})


def test_webhook_url_setting_accepts_http_and_https_and_clearing() -> None:
    assert apply_changes(ModelSettings(), {"webhook_url": "http://n8n:5678/webhook/x"}).webhook_url
    assert apply_changes(ModelSettings(), {"webhook_url": OWN}).webhook_url == OWN
    assert apply_changes(settings(), {"webhook_url": None}).webhook_url is None


POLICY = RetryPolicy(max_age_seconds=600, initial_seconds=1, max_seconds=30, jitter_seconds=2)


def test_backoff_doubles_then_caps() -> None:
    assert [POLICY.delay(n, 0.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_jitter_adds_up_to_its_maximum() -> None:
    assert POLICY.delay(1, 0.5) == 2.0
    assert POLICY.delay(10, 0.999) == pytest.approx(30 + 1.998)


@given(attempts=st.integers(min_value=1, max_value=10_000), unit=st.floats(min_value=0, max_value=0.999999))
def test_delay_stays_within_cap_plus_jitter(attempts: int, unit: float) -> None:
    delay = POLICY.delay(attempts, unit)
    assert POLICY.initial_seconds <= delay <= POLICY.max_seconds + POLICY.jitter_seconds


def test_only_age_kills_an_alert() -> None:
    assert not POLICY.gives_up(age_seconds=599)
    assert POLICY.gives_up(age_seconds=600)


@pytest.mark.parametrize(
    ("status", "refused", "expected"),
    [
        (200, False, Verdict.DELIVERED),
        (204, False, Verdict.DELIVERED),
        (None, True, Verdict.REFUSED),
        (400, False, Verdict.REFUSED),
        (410, False, Verdict.REFUSED),
        (413, False, Verdict.REFUSED),
        (422, False, Verdict.REFUSED),
        (None, False, Verdict.FAILED),
        (302, False, Verdict.FAILED),
        (401, False, Verdict.FAILED),
        (404, False, Verdict.FAILED),
        (429, False, Verdict.FAILED),
        (500, False, Verdict.FAILED),
        (503, False, Verdict.FAILED),
    ],
)
def test_verdicts(status: int | None, refused: bool, expected: Verdict) -> None:
    assert verdict(status, refused=refused) is expected
