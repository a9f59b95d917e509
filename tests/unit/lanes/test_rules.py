"""Each filter and tagging rule, with a case that fails if the rule were wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.lanes.rules import (
    CoinState,
    Decision,
    Skip,
    Tag,
    coin_allowed,
    decide,
    definitely_skipped,
    phase_allowed,
    tag_for,
)
from coinfleet.models.settings import ModelSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def settings(**changes: object) -> ModelSettings:
    return ModelSettings.model_validate({"min_scan_interval_seconds": 0, **changes})


def state(**changes: object) -> CoinState:
    base: dict[str, object] = {"last_scan_ts": T0, "last_probability": 0.1, "last_tag": Tag.NEGATIVE}
    return CoinState(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0, Tag.NEGATIVE),
        (0.4999, Tag.NEGATIVE),
        (0.5, Tag.POSITIVE),
        (0.6999, Tag.POSITIVE),
        (0.7, Tag.ALERT),
        (1.0, Tag.ALERT),
    ],
)
def test_tag_bands_at_their_edges(p: float, expected: Tag) -> None:
    assert tag_for(p, 0.7) is expected


@given(st.floats(0, 1), st.floats(0.5, 1))
def test_tags_are_monotonic_in_probability(p: float, threshold: float) -> None:
    order = [Tag.NEGATIVE, Tag.POSITIVE, Tag.ALERT]
    assert order.index(tag_for(p, threshold)) <= order.index(tag_for(min(1.0, p + 0.01), threshold))


def test_whitelist_and_blacklist() -> None:
    white = settings(coin_filter_mode="whitelist", coin_whitelist=["a"])
    black = settings(coin_filter_mode="blacklist", coin_blacklist=["a"])
    assert coin_allowed(white, "a") and not coin_allowed(white, "b")
    assert not coin_allowed(black, "a") and coin_allowed(black, "b")
    assert coin_allowed(settings(), "anything")


def test_phases() -> None:
    assert phase_allowed(settings(), None)
    assert phase_allowed(settings(phases=[1, 2]), 2)
    assert not phase_allowed(settings(phases=[1, 2]), 3)
    assert not phase_allowed(settings(phases=[1]), None)


def test_min_scan_interval_uses_data_time() -> None:
    rule = settings(min_scan_interval_seconds=20)
    assert decide(rule, state(last_scan_ts=at(0)), at(19.9), 0.1) is Skip.MIN_INTERVAL
    assert isinstance(decide(rule, state(last_scan_ts=at(0)), at(20), 0.1), Decision)
    assert definitely_skipped(rule, state(last_scan_ts=at(0)), "m", at(5)) is Skip.MIN_INTERVAL


def test_no_min_scan_interval_scores_a_row_older_than_the_last_scan() -> None:
    # as a lane that keeps no scan cache does: with no such rule it cannot know the last scan
    assert isinstance(
        decide(settings(min_scan_interval_seconds=0), state(last_scan_ts=at(9)), at(5), 0.1), Decision
    )


@pytest.mark.parametrize(
    "rule",
    [
        "min_scan_interval_seconds", "ignore_bad_seconds", "ignore_positive_seconds", "ignore_alert_seconds",
        "max_log_entries_negative", "max_log_entries_positive", "max_log_entries_alert",
    ],
)  # fmt: skip
def test_each_rule_with_a_memory_reads_the_scan_cache(rule: str) -> None:
    none = {"min_scan_interval_seconds": 0}
    assert not settings(**none).reads_scan_cache
    assert settings(**none | {rule: 5}).reads_scan_cache


@pytest.mark.parametrize(
    ("p", "key", "tag"),
    [
        (0.1, "ignore_bad_seconds", Tag.NEGATIVE),
        (0.6, "ignore_positive_seconds", Tag.POSITIVE),
        (0.9, "ignore_alert_seconds", Tag.ALERT),
    ],
)
def test_ignore_window_follows_the_result_tag(p: float, key: str, tag: Tag) -> None:
    rule = settings(**{key: 60})
    first = decide(rule, None, at(0), p)
    assert isinstance(first, Decision) and first.tag is tag
    assert first.state.ignore_until == at(60) and first.state.ignore_reason is tag
    assert decide(rule, first.state, at(59), 0.1) is Skip.IGNORE_WINDOW
    assert isinstance(decide(rule, first.state, at(60), 0.1), Decision)


def test_other_tags_ignore_window_does_not_apply() -> None:
    rule = settings(ignore_alert_seconds=60)
    first = decide(rule, None, at(0), 0.1)  # negative: no window
    assert isinstance(first, Decision) and first.state.ignore_until is None


def test_send_ignored_scores_but_does_not_store() -> None:
    rule = settings(ignore_alert_seconds=60, send_ignored=True)
    first = decide(rule, None, at(0), 0.9)
    assert isinstance(first, Decision)
    assert definitely_skipped(rule, first.state, "m", at(10)) is None
    inside = decide(rule, first.state, at(10), 0.95)
    assert isinstance(inside, Decision)
    assert not inside.store and inside.suppressed is Skip.IGNORE_WINDOW
    assert inside.state.ignore_until == at(60)  # an ignored result does not extend the window


def test_log_limit_counts_per_tag() -> None:
    rule = settings(max_log_entries_alert=2)
    s: CoinState | None = None
    stored = []
    for i in range(4):
        d = decide(rule, s, at(i), 0.9)
        assert isinstance(d, Decision)
        stored.append(d.store)
        s = d.state
    assert stored == [True, True, False, False]
    negative = decide(rule, s, at(10), 0.1)
    assert isinstance(negative, Decision) and negative.store  # other tags are not limited


def test_log_limit_suppression_is_reported() -> None:
    rule = settings(max_log_entries_negative=1)
    first = decide(rule, None, at(0), 0.1)
    assert isinstance(first, Decision)
    second = decide(rule, first.state, at(1), 0.1)
    assert isinstance(second, Decision) and second.suppressed is Skip.LOG_LIMIT


def test_definitely_skipped_keeps_ignored_events_when_sending_them() -> None:
    rule = settings(ignore_bad_seconds=30)
    inside = state(ignore_until=at(30), ignore_reason=Tag.NEGATIVE)
    assert definitely_skipped(rule, inside, "m", at(10)) is Skip.IGNORE_WINDOW
    assert definitely_skipped(rule, inside, "m", at(30)) is None
