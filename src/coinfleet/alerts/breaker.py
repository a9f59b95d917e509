"""A circuit breaker per receiver: a receiver that fails pauses every lane sending to it.

Closed, every lane sends. After a failure the breaker opens for a backoff delay; when it is over, one
lane sends one alert as a probe while the others wait; the probe's success closes the breaker, its
failure opens it again for a longer delay. A lane that waits makes no attempt, so a down receiver
spends no alert's attempts and no alert overtakes another. Pure: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from coinfleet.alerts.rules import RetryPolicy

UNLIMITED = 1 << 30  #: what `admit` grants while the breaker is closed


@dataclass(kw_only=True, slots=True)
class Breaker:
    """One receiver's breaker; time is any monotonic clock in seconds."""

    policy: RetryPolicy
    failures: int = 0  #: failures in a row (0: closed)
    open_until: float = float("-inf")
    probing: bool = False  #: a lane is sending the probe

    @property
    def closed(self) -> bool:
        """The receiver answered last time: every lane sends."""
        return self.failures == 0

    def wait(self, now: float) -> float:
        """Seconds a lane should wait before asking `admit` again (0: ask now)."""
        if self.closed:
            return 0.0
        if self.probing:  # the probe's answer decides; look again soon
            return self.policy.initial_seconds
        return max(0.0, self.open_until - now)

    def admit(self, now: float) -> int:
        """How many alerts a lane may send now: any number when closed, the probe's one when the
        delay is over and nobody probes yet, else none."""
        if self.closed:
            return UNLIMITED
        if self.probing or now < self.open_until:
            return 0
        self.probing = True
        return 1

    def succeeded(self) -> bool:
        """The receiver answered: close. True when it was open (the receiver is back)."""
        was_open = not self.closed
        self.failures = 0
        self.open_until = float("-inf")
        self.probing = False
        return was_open

    def failed(self, now: float, random_unit: float) -> float:
        """The receiver failed: open for the next backoff delay, which is returned."""
        self.failures += 1
        self.probing = False
        delay = self.policy.delay(self.failures, random_unit)
        self.open_until = max(self.open_until, now + delay)
        return delay

    def probe_over(self) -> None:
        """The probing lane stopped without an answer (no alert was due, or it was cancelled)."""
        self.probing = False
