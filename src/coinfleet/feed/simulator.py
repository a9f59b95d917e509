"""A deterministic market of pump.fun-like coins on the bonding curve, calibrated on the recorded file.

The model and the figures it is calibrated on are described in docs/simulator.md.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from coinfleet.feed import curve
from coinfleet.feed.coin_plan import CoinPlan, Trade, plan_coin
from coinfleet.feed.recorded import Observation, map_observations
from coinfleet.metrics import MetricRow

# Row parameters, chosen (with those of `coin_plan`) so a default run lands in
# `coinfleet.feed.calibration.CALIBRATION_BANDS`.
#: row gap: a median that grows with the coin's buyers (the tracker fetches more per busy coin) ...
GAP_BASE_S = 5.3
GAP_PER_BUYER_S = 1.2
GAP_FREE_BUYERS = 6
#: ... times a log-normal jitter (p90/median ≈ 1.55 per coin in the real file)
GAP_SIGMA = 0.36
GAP_MIN_S = 1.5
#: a coin gets the whale flag (if it lacks it from launch) once a buy reaches this size
WHALE_BUY_SOL = 2.0


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """How big and how busy the simulated market is."""

    coins: int = 50  #: coins launched during the launch window
    seed: int = 7
    launch_window_seconds: float = 300.0  #: the first `coins` launches spread over this many seconds
    launches_per_minute: float = 2.0  #: further launches, from the start on, so the market never runs dry

    def __post_init__(self) -> None:
        if self.coins < 0 or self.launch_window_seconds < 0 or self.launches_per_minute < 0:
            raise ValueError("coins, launch_window_seconds and launches_per_minute must not be negative")


@dataclass(kw_only=True, slots=True)
class _Pool:
    sol_in_pool: float = curve.START_SOL
    buy_volume: float = 0.0
    sell_volume: float = 0.0
    buyers: int = 0
    whale: bool = False


@dataclass(order=True, slots=True)
class _Cursor:
    timestamp: datetime
    coin: int
    rows: list[MetricRow] = field(compare=False)
    position: int = field(compare=False, default=0)


class MarketSimulator:
    """Coins launch over time and trade on the curve; rows come out in timestamp order."""

    def __init__(self, config: SimulatorConfig, start: datetime) -> None:
        _require_aware(start)
        self._config = config
        self._start = start.astimezone(UTC)
        self._launches = _launch_offsets(config)
        self._next_launch = next(self._launches)
        self._launched = 0
        self._queue: list[_Cursor] = []

    def step_until(self, t: datetime) -> list[MetricRow]:
        """All rows with timestamp ≤ t not yet returned, in timestamp order."""
        _require_aware(t)
        self._launch_until((t - self._start).total_seconds())
        return self._pop_until(t)

    def history(self, duration_seconds: float) -> list[MetricRow]:
        """The rows of the first `duration_seconds` of the run not yet returned, sorted."""
        return self.step_until(self._start + timedelta(seconds=duration_seconds))

    def _launch_until(self, horizon: float) -> None:
        while self._next_launch <= horizon:
            rows = self._launch(self._next_launch)
            heapq.heappush(self._queue, _Cursor(rows[0].timestamp, self._launched, rows))
            self._next_launch = next(self._launches)

    def _launch(self, offset: float) -> list[MetricRow]:
        rng = random.Random(f"{self._config.seed}:coin:{self._launched}")
        self._launched += 1
        plan = plan_coin(rng)
        return map_observations(coin_observations(plan, self._start + timedelta(seconds=offset), rng))

    def _pop_until(self, t: datetime) -> list[MetricRow]:
        out: list[MetricRow] = []
        while self._queue and self._queue[0].timestamp <= t:
            cursor = self._queue[0]
            out.append(cursor.rows[cursor.position])
            cursor.position += 1
            if cursor.position < len(cursor.rows):
                cursor.timestamp = cursor.rows[cursor.position].timestamp
                heapq.heapreplace(self._queue, cursor)
            else:
                heapq.heappop(self._queue)
        return out


def coin_observations(plan: CoinPlan, launch: datetime, rng: random.Random) -> list[Observation]:
    """Walk a planned coin row by row until its lifetime ends or it graduates."""
    pool = _Pool(buyers=plan.launch_buyers, whale=plan.whale)
    pending: Iterator[Trade] = iter(plan.trades)
    upcoming = next(pending, None)
    observations: list[Observation] = []
    at = 0.0
    while at <= plan.lifetime:
        while upcoming is not None and upcoming.at <= at:
            _apply(pool, upcoming)
            upcoming = next(pending, None)
        observations.append(_observe(plan, pool, launch + timedelta(seconds=at)))
        if curve.is_graduated(pool.sol_in_pool):
            break
        at += _row_gap(rng, pool.buyers)
    return observations


def _launch_offsets(config: SimulatorConfig) -> Iterator[float]:
    rng = random.Random(f"{config.seed}:launches")
    window = sorted(rng.uniform(0.0, config.launch_window_seconds) for _ in range(config.coins))
    return heapq.merge(window, _poisson_stream(rng, config.launches_per_minute / 60.0))


def _poisson_stream(rng: random.Random, per_second: float) -> Iterator[float]:
    at = 0.0
    while per_second > 0.0:
        at += rng.expovariate(per_second)
        yield at
    yield math.inf


def _apply(pool: _Pool, trade: Trade) -> None:
    if trade.buy_sol:
        bought = _buy(pool, trade.buy_sol)
        pool.buyers += int(trade.new_buyer)
        if trade.round_trip:
            _sell(pool, bought.tokens)
    if trade.sell_share:
        _sell(pool, curve.tokens_sold(pool.sol_in_pool) * trade.sell_share)


def _buy(pool: _Pool, sol: float) -> curve.Swap:
    bought = curve.buy(pool.sol_in_pool, sol)
    pool.sol_in_pool, pool.buy_volume = bought.sol_in_pool, pool.buy_volume + bought.sol
    pool.whale = pool.whale or bought.sol >= WHALE_BUY_SOL
    return bought


def _sell(pool: _Pool, tokens: float) -> None:
    sold = curve.sell_tokens(pool.sol_in_pool, tokens)
    pool.sol_in_pool, pool.sell_volume = sold.sol_in_pool, pool.sell_volume + sold.sol


def _observe(plan: CoinPlan, pool: _Pool, moment: datetime) -> Observation:
    return Observation(
        mint=plan.mint,
        timestamp=moment,
        sol_in_pool=pool.sol_in_pool,
        unique_buyers=pool.buyers,
        buy_pressure=pool.buy_volume,
        sell_pressure=pool.sell_volume,
        whale=pool.whale,
        bot_like=plan.bot_like,
    )


def _row_gap(rng: random.Random, buyers: int) -> float:
    median = GAP_BASE_S + GAP_PER_BUYER_S * max(buyers - GAP_FREE_BUYERS, 0)
    return max(median * rng.lognormvariate(0.0, GAP_SIGMA), GAP_MIN_S)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"time {moment} is naive; pass an aware UTC datetime")
