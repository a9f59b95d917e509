"""Which predictions go to a model's webhook, and when to retry or give up; pure values in and out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from coinfleet.models.settings import ModelSettings, SendMode

#: the tag values of coinfleet.lanes.rules.Tag (alerts sit below the lanes, so plain strings)
NEGATIVE, POSITIVE, ALERT = "negative", "positive", "alert"


def mode_matches(modes: Iterable[SendMode], tag: str) -> bool:
    """The send modes combined with OR; positive_only means positive without alerts."""
    wanted = {
        "all": {NEGATIVE, POSITIVE, ALERT},
        "alerts_only": {ALERT},
        "positive_only": {POSITIVE},
        "negative_only": {NEGATIVE},
    }
    return any(tag in wanted[mode] for mode in modes)


def webhook_url(settings: ModelSettings, default_url: str | None) -> str | None:
    """The URL a model's alerts go to: its own, else the global default; None when disabled or unset."""
    if not settings.webhook_enabled:
        return None
    return settings.webhook_url or default_url or None


def route(settings: ModelSettings, default_url: str | None, *, tag: str, suppressed: bool) -> str | None:
    """Where one scored prediction is sent, or None when the model's send rules leave it out."""
    url = webhook_url(settings, default_url)
    if url is None or (suppressed and not settings.send_ignored):
        return None
    return url if mode_matches(settings.send_modes, tag) else None


#: answers that refuse this very request for good: sending the same bytes again cannot succeed
PERMANENT_STATUSES = frozenset({400, 410, 413, 415, 422})


class Verdict(StrEnum):
    """What one attempt says about the alert and about its receiver."""

    DELIVERED = "delivered"  #: a 2xx answer
    REFUSED = "refused"  #: refused for good (a permanent status, or a URL the guard refuses): dead now
    FAILED = "failed"  #: the receiver is down or erring (no answer, 5xx, 404, 429, …): try again later


def verdict(status: int | None, *, refused: bool) -> Verdict:
    """Judge one attempt by its status code (None: no answer) and whether the guard refused it."""
    if refused or status in PERMANENT_STATUSES:
        return Verdict.REFUSED
    if status is not None and 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.FAILED


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How long an alert is retried, and how far apart a down receiver is probed."""

    max_age_seconds: float
    initial_seconds: float
    max_seconds: float
    jitter_seconds: float

    def gives_up(self, *, age_seconds: float) -> bool:
        """True when an alert that just failed is dead: only age kills (attempts are never counted)."""
        return age_seconds >= self.max_age_seconds

    def delay(self, failures: int, random_unit: float) -> float:
        """Seconds before the next probe after `failures` failures in a row: capped exponential backoff
        plus jitter (as stamina does)."""
        # the caller draws `random_unit` in [0, 1), so this stays pure and testable
        exponent = min(max(failures - 1, 0), 60)
        backoff = min(self.max_seconds, self.initial_seconds * 2.0**exponent)
        return backoff + self.jitter_seconds * random_unit
