"""Evaluation rounds: every model gets its weighted quota of due predictions, judged set-based in SQL.

One round = one ATH/min tracking statement for all running horizons, then one `evaluate_due`
statement per model with due work, in model order (round-robin). Claims use FOR UPDATE SKIP LOCKED,
so any number of workers may run rounds on the same database. Rules: docs/evaluation.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from coinfleet.config import Settings
from coinfleet.constants import DEFAULT_WEIGHT
from coinfleet.db.outage import DATABASE_ERRORS, Outage
from coinfleet.db.sql import query
from coinfleet.evaluation import rollups

log = structlog.get_logger(__name__)
#: a clock later than every horizon: settles everything that is pending (a feed known to have ended)
END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)
#: how far ahead of the wall clock a metric row may be dated and still count (Settings has the same)
DEFAULT_FUTURE_TOLERANCE_SECONDS = 30.0
#: a model's quota is split over several connections only in claims of at least this many
MIN_CHUNK = 1000
#: seconds between advances of the statistics rollups (coinfleet.evaluation.rollups)
ROLLUP_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class RoundConfig:
    """How rounds judge and share the work."""

    grace_seconds: float  #: data seconds after the horizon end before "no_data"
    base_quota: int  #: due predictions per round for a model of weight 1
    connections: int = 1  #: statements run at once (SKIP LOCKED keeps their claims apart)

    def quota(self, weight: float) -> int:
        """A model's share of one round: the base quota scaled by its weight, at least 1."""
        return max(1, math.ceil(self.base_quota * weight))

    def chunks(self, weight: float) -> list[int]:
        """A model's quota cut into one claim per connection (fewer when the quota is small). Claim k of
        n takes predictions whose id is k modulo n: concurrent claims of one model then never wade
        through each other's locked rows (SKIP LOCKED still guards other workers); a batch's ids are
        consecutive, so the parts are even."""
        quota = self.quota(weight)
        parts = max(1, min(self.connections, quota // MIN_CHUNK))
        size = math.ceil(quota / parts)
        return [min(size, quota - i * size) for i in range(parts)]


@dataclass(frozen=True)
class Claim:
    """One statement of a round: up to `size` due predictions of a model, its part `part` of `parts`."""

    model_id: int
    size: int
    part: int = 0
    parts: int = 1


@dataclass(frozen=True, kw_only=True)
class RoundResult:
    """What one round did: evaluated prediction ids per model id."""

    clock: datetime
    evaluated: dict[int, list[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Predictions evaluated in this round, over all models."""
        return sum(len(ids) for ids in self.evaluated.values())


async def data_clock(
    conn: asyncpg.Connection, tolerance_seconds: float = DEFAULT_FUTURE_TOLERANCE_SECONDS
) -> datetime | None:
    """The newest metric time of any coin no further than `tolerance_seconds` ahead of the wall clock,
    None when there is none."""
    value: datetime | None = await conn.fetchval(query("data_clock"), tolerance_seconds)
    return value


async def track_open(conn: asyncpg.Connection, clock: datetime) -> int:
    """Move the running ATH/min of all open horizons forward to the clock; how many rows moved."""
    status: str = await conn.execute(query("track_open"), clock)
    return int(status.split()[-1])


async def evaluate_model(
    conn: asyncpg.Connection,
    model_id: int,
    *,
    quota: int,
    clock: datetime,
    grace_seconds: float,
    part: int = 0,
    parts: int = 1,
) -> list[int]:
    """Judge up to `quota` due predictions of one model in one statement; their ids."""
    rows = await conn.fetch(query("evaluate_due"), model_id, quota, clock, grace_seconds, parts, part)
    return [r["prediction_id"] for r in rows]


async def run_round(pool: asyncpg.Pool, config: RoundConfig, clock: datetime) -> RoundResult:
    """One round: track open horizons, then each model with due work gets its weighted quota."""
    async with pool.acquire() as conn:
        await track_open(conn, clock)
        models = await conn.fetch(query("models_with_due"), clock, DEFAULT_WEIGHT)
    per_model = []
    for m in models:
        chunks = config.chunks(m["weight"])
        per_model.append([Claim(m["id"], size, part, len(chunks)) for part, size in enumerate(chunks)])
    claims = _round_robin(per_model)
    evaluated: dict[int, list[int]] = {}
    queue: asyncio.Queue[Claim] = asyncio.Queue()
    for claim in claims:
        queue.put_nowait(claim)

    async def worker() -> None:
        async with pool.acquire() as conn:
            while not queue.empty():
                claim = queue.get_nowait()
                ids = await evaluate_model(
                    conn,
                    claim.model_id,
                    quota=claim.size,
                    clock=clock,
                    grace_seconds=config.grace_seconds,
                    part=claim.part,
                    parts=claim.parts,
                )
                if ids:
                    evaluated.setdefault(claim.model_id, []).extend(ids)

    await asyncio.gather(*(worker() for _ in range(min(config.connections, len(claims)))))
    return RoundResult(clock=clock, evaluated=evaluated)


def _round_robin(per_model: list[list[Claim]]) -> list[Claim]:
    """First claim of every model, then every second claim, and so on."""
    order: list[Claim] = []
    for depth in range(max((len(c) for c in per_model), default=0)):
        order.extend(claims[depth] for claims in per_model if depth < len(claims))
    return order


async def drain(pool: asyncpg.Pool, config: RoundConfig, clock: datetime | None = None) -> list[RoundResult]:
    """Run rounds at a fixed clock (default: the data clock) until nothing more is due."""
    if clock is None:
        async with pool.acquire() as conn:
            clock = await data_clock(conn)
    rounds: list[RoundResult] = []
    if clock is None:
        return rounds
    while True:
        result = await run_round(pool, config, clock)
        if not result.total:
            return rounds
        rounds.append(result)


class FeedClock:
    """Evaluation's "now": the data clock; once the feed stalls, at least the wall clock; never more
    than the tolerance ahead of the wall clock."""

    def __init__(
        self,
        *,
        stall_seconds: float | None,
        monotonic: Callable[[], float] = time.monotonic,
        tolerance_seconds: float = DEFAULT_FUTURE_TOLERANCE_SECONDS,
    ) -> None:
        self._tolerance = timedelta(seconds=tolerance_seconds)
        self._stall = stall_seconds
        self._monotonic = monotonic
        self._last: datetime | None = None
        self._advanced_at = monotonic()

    def now(self, data: datetime | None) -> datetime | None:
        """The clock for a round, given the newest metric time; None when there is no data at all."""
        if data != self._last:
            self._last, self._advanced_at = data, self._monotonic()
        stalled = self._stall is not None and self._monotonic() - self._advanced_at >= self._stall
        wall = datetime.now(UTC)
        if stalled:
            return wall if data is None else max(min(data, wall + self._tolerance), wall)
        return None if data is None else min(data, wall + self._tolerance)


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """The evaluation loop's settings."""

    rounds: RoundConfig
    interval_seconds: float  #: pause after a round with nothing to do
    stall_seconds: float | None  #: feed stall before the wall clock counts; None: data clock only
    #: metric rows dated further ahead of the wall clock are no clock
    future_tolerance_seconds: float = DEFAULT_FUTURE_TOLERANCE_SECONDS


def round_config(settings: Settings) -> RoundConfig:
    """Round settings from the process settings."""
    return RoundConfig(
        grace_seconds=settings.evaluation_grace_seconds,
        base_quota=settings.evaluation_base_quota,
        connections=settings.evaluation_connections,
    )


def loop_config(settings: Settings) -> LoopConfig:
    """Loop settings from the process settings (live: the wall clock counts once the feed stalls)."""
    return LoopConfig(
        rounds=round_config(settings),
        interval_seconds=settings.evaluation_interval_seconds,
        stall_seconds=settings.evaluation_feed_stall_seconds,
        future_tolerance_seconds=settings.future_tolerance_seconds,
    )


async def evaluation_loop(pool: asyncpg.Pool, config: LoopConfig, stop: asyncio.Event) -> None:
    """Run rounds until `stop`; sleep between rounds only when a round found nothing due. Beside them, the
    statistics rollups advance every ROLLUP_INTERVAL_SECONDS on a connection of their own."""
    clock = FeedClock(stall_seconds=config.stall_seconds, tolerance_seconds=config.future_tolerance_seconds)
    outage = Outage("evaluation")
    rolling = asyncio.create_task(rollups.rollup_loop(pool, stop, ROLLUP_INTERVAL_SECONDS))
    try:
        await _rounds(pool, config, clock, outage, stop)
    finally:
        rolling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rolling


async def _rounds(
    pool: asyncpg.Pool, config: LoopConfig, clock: FeedClock, outage: Outage, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            done = await _one_round(pool, config, clock)
        except DATABASE_ERRORS as exc:
            await outage.wait(exc, stop)  # logged once per outage; the pause doubles up to a cap
            continue
        except asyncpg.PostgresError as exc:
            log.warning("evaluation_round_failed", error=str(exc))
            done = 0
        outage.succeeded()
        if not done:
            await _wait(stop, config.interval_seconds)


async def _one_round(pool: asyncpg.Pool, config: LoopConfig, clock: FeedClock) -> int:
    async with pool.acquire() as conn:
        now = clock.now(await data_clock(conn, config.future_tolerance_seconds))
    if now is None:
        return 0
    result = await run_round(pool, config.rounds, now)
    if result.total:
        log.info(
            "evaluation_round",
            evaluated=result.total,
            models={k: len(v) for k, v in result.evaluated.items()},
        )
    return result.total


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
