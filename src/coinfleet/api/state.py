"""What every request of one app shares, opened by the app's lifespan."""

from __future__ import annotations

import asyncpg
from fastapi import Request

from coinfleet.api.stream import StreamHub
from coinfleet.errors import DatabaseError
from coinfleet.service.scoring import Scorer


class Shared:
    """The app's pool, live-stream hub and scorer (available while the app runs)."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._stream: StreamHub | None = None
        self._scorer: Scorer | None = None

    def open(self, pool: asyncpg.Pool, stream: StreamHub, *, future_tolerance_seconds: float = 30.0) -> None:
        """Called by the lifespan once the pool exists."""
        scorer = Scorer(pool, future_tolerance_seconds=future_tolerance_seconds)
        self._pool, self._stream, self._scorer = pool, stream, scorer
        scorer.start()

    def close(self) -> None:
        """Called by the lifespan at the end: stops the scoring child."""
        if self._scorer is not None:
            self._scorer.close()

    @property
    def pool(self) -> asyncpg.Pool:
        """The API's own connection pool."""
        if self._pool is None:
            raise DatabaseError("the API is not started (its lifespan has not run)")
        return self._pool

    @property
    def stream(self) -> StreamHub:
        """The live-stream hub."""
        if self._stream is None:
            raise DatabaseError("the API is not started (its lifespan has not run)")
        return self._stream

    @property
    def scorer(self) -> Scorer:
        """Manual scoring (its models run in a child process below the lanes' priority)."""
        if self._scorer is None:
            raise DatabaseError("the API is not started (its lifespan has not run)")
        return self._scorer


def shared(request: Request) -> Shared:
    """The request's app's shared objects."""
    value: Shared = request.app.state.shared
    return value


def pool(request: Request) -> asyncpg.Pool:
    """The API's pool."""
    return shared(request).pool
