"""Which predictions go to a model's webhook, and when to retry or give up; pure values in and out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coinfleet.models.settings import ModelSettings, SendMode

#: the tag values of coinfleet.pipeline.rules.Tag (alerts sit below the pipeline, so plain strings)
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


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how long an alert is retried."""

    max_attempts: int
    max_age_seconds: float
    initial_seconds: float
    max_seconds: float
    jitter_seconds: float

    def gives_up(self, *, attempts: int, age_seconds: float) -> bool:
        """True when an alert that just failed its `attempts`-th attempt is dead."""
        return attempts >= self.max_attempts or age_seconds >= self.max_age_seconds

    def delay(self, attempts: int, random_unit: float) -> float:
        """Seconds before the next attempt: capped exponential backoff plus jitter (as stamina does)."""
        # the caller draws `random_unit` in [0, 1), so this stays pure and testable
        exponent = min(max(attempts - 1, 0), 60)
        backoff = min(self.max_seconds, self.initial_seconds * 2.0**exponent)
        return backoff + self.jitter_seconds * random_unit
