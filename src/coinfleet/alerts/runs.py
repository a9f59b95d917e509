"""Which claimed alert of a run goes next when a model has several requests in flight; pure.

A run is a model's claimed alerts in queue order. Alerts start in that order, but an alert waits while
an older alert of the same coin is in flight, so one coin's alerts arrive strictly in order. Once an
attempt fails, nothing new starts (the receiver's breaker decides when to go on) and whatever never
started is given back by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar


class HasCoin(Protocol):
    """A claimed alert as far as ordering goes."""

    @property
    def id(self) -> int: ...

    @property
    def mint(self) -> str: ...


A = TypeVar("A", bound=HasCoin)


class Run(Generic[A]):
    """The alerts of one claim and what became of them."""

    def __init__(self, alerts: Sequence[A]) -> None:
        self._waiting: list[A] = list(alerts)
        self._busy: set[str] = set()  #: coins with an alert in flight
        self.stopped = False  #: an attempt failed: nothing new starts

    def take(self) -> A | None:
        """The oldest waiting alert whose coin has nothing in flight (it is now in flight), or None."""
        if self.stopped:
            return None
        for n, alert in enumerate(self._waiting):
            if alert.mint not in self._busy:
                self._busy.add(alert.mint)
                return self._waiting.pop(n)
        return None

    def finished(self, alert: A, *, failed: bool) -> None:
        """`alert`'s attempt is over; a failure stops the run."""
        self._busy.discard(alert.mint)
        self.stopped = self.stopped or failed
