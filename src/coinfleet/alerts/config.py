"""The delivery settings of one process, taken from the webhook_* settings."""

from __future__ import annotations

from dataclasses import dataclass

from coinfleet.alerts.rules import RetryPolicy
from coinfleet.alerts.transport import HOP_TIMEOUT_FACTOR, MAX_REDIRECTS
from coinfleet.config import Settings


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryConfig:
    """The delivery settings of one process."""

    timeout_seconds: float
    allow_private: bool
    policy: RetryPolicy
    max_concurrency: int
    in_flight: int  #: requests one model may have in flight (for different coins)
    poll_seconds: float
    retention_seconds: float
    prune_interval_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        """Take the webhook_* settings."""
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private,
            policy=RetryPolicy(
                max_age_seconds=settings.webhook_max_age_seconds,
                initial_seconds=settings.webhook_backoff_initial_seconds,
                max_seconds=settings.webhook_backoff_max_seconds,
                jitter_seconds=settings.webhook_backoff_jitter_seconds,
            ),
            max_concurrency=settings.webhook_max_concurrency,
            in_flight=settings.webhook_in_flight_per_model,
            poll_seconds=settings.poll_interval_seconds,
            retention_seconds=settings.webhook_log_retention_days * 86_400,
            prune_interval_seconds=settings.prune_interval_seconds,
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claim on one alert lasts while its session lives: longer than any attempt can take,
        redirects included (a claim of a session that ended is void at once)."""
        return (MAX_REDIRECTS + 1) * HOP_TIMEOUT_FACTOR * self.timeout_seconds + 5.0
