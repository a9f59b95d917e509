"""Live data without N× load: one read per interval shared by every open page, and a short history.

Every open overview refreshes every couple of seconds. Without sharing, ten browser tabs would run ten
reads per interval; `Shared` runs one and hands its result to everyone who asks within `max_age`.
`History` keeps the last few minutes of per-model samples in memory for the small charts (a restart
starts them empty: they show what this process saw, nothing is read back from the database).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger(__name__)


class Shared(Generic[T]):
    """The result of `fetch`, read again at most once per `max_age` seconds whoever asks.

    `get` waits for a fresh result (callers arriving during a read wait for that read). `latest` never
    waits: it returns what is there (None before the first read) and starts one read in the background
    when that is missing or stale, so a dear read (an aggregate over a million predictions) never holds
    up the page that asks.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[T]],
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._read_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    def _stale(self) -> bool:
        return self._value is None or self._clock() - self._read_at >= self._max_age

    async def _read(self) -> None:
        async with self._lock:
            if self._stale():
                self._value = await self._fetch()
                self._read_at = self._clock()

    async def _read_quietly(self) -> None:
        try:
            await self._read()
        except Exception as exc:  # the old result stays; the next caller tries again
            log.warning("ui_read_failed", error=str(exc))

    async def get(self) -> T:
        """A result at most `max_age` old."""
        await self._read()
        assert self._value is not None
        return self._value

    def latest(self) -> T | None:
        """The last result at once; a read starts in the background when it is missing or stale."""
        if self._stale() and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._read_quietly())
        return self._value


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One model's counters at one moment."""

    at: float  #: unix seconds
    events: int  #: events handled so far (a counter that only grows, or resets on restart)
    lag_events: int
    lag_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class Point:
    """A point of the small throughput/lag chart."""

    at: float
    events_per_second: float | None
    lag_events: int
    lag_seconds: float | None


class History:
    """The last `size` samples per model, turned into rates for the charts."""

    def __init__(self, *, size: int = 150) -> None:
        self._size = size
        self._samples: dict[int, deque[Sample]] = {}

    def add(self, model_id: int, sample: Sample) -> None:
        """Remember a sample (samples not newer than the last one are ignored)."""
        samples = self._samples.setdefault(model_id, deque(maxlen=self._size))
        if samples and sample.at <= samples[-1].at:
            return
        samples.append(sample)

    def forget_except(self, model_ids: set[int]) -> None:
        """Drop the history of models no longer shown."""
        for model_id in set(self._samples) - model_ids:
            del self._samples[model_id]

    def points(self, model_id: int) -> list[Point]:
        """Events/s between consecutive samples (None after a counter reset), and the lag."""
        samples = list(self._samples.get(model_id, ()))
        points = []
        for before, after in zip([None, *samples], samples, strict=False):
            rate = None
            if before is not None and after.events >= before.events:
                rate = (after.events - before.events) / (after.at - before.at)
            points.append(
                Point(at=after.at, events_per_second=rate, lag_events=after.lag_events,
                      lag_seconds=after.lag_seconds)
            )  # fmt: skip
        return points

    def latest_rate(self, model_id: int) -> float | None:
        """Events/s over the last interval, if two samples exist."""
        points = self.points(model_id)
        return points[-1].events_per_second if points else None
