"""A deterministic market of pump.fun-like coins on the bonding curve, calibrated on the recorded file.

The model and the figures it is calibrated on are described in docs/simulator.md.
"""

from __future__ import annotations

import enum
import heapq
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from coinfleet.feed import curve
from coinfleet.feed.recorded import Observation, map_observations
from coinfleet.metrics import MetricRow

# Figures measured on pumpfun_tracks_2025-06-06.csv with `python -m coinfleet.feed.calibration FILE`.
#: median gap between two rows of one coin (s)
REAL_GAP_MEDIAN_S = 5.84
#: 90th percentile of that gap (s)
REAL_GAP_P90_S = 11.5
#: median rows a coin is seen for
REAL_ROWS_PER_COIN_MEDIAN = 18.0
#: median seconds from a coin's first to its last row
REAL_LIFETIME_MEDIAN_S = 207.0
#: share of bars whose close differs from their open
REAL_MOVING_ROW_SHARE = 0.0178
#: share of price moves that go up
REAL_UP_MOVE_SHARE = 0.584
#: median size of a price move (%, absolute)
REAL_MOVE_ABS_MEDIAN_PCT = 0.68
#: 90th percentile of that size (%)
REAL_MOVE_ABS_P90_PCT = 14.95
#: share of coins whose close rises ≥ 10 % within 2 minutes of their first row
REAL_RISE_10_SHARE = 0.067
#: share of coins whose close falls ≥ 50 % below an earlier peak
REAL_CRASH_50_SHARE = 0.013
#: median bonding-curve progress at a coin's last row (%)
REAL_FINAL_PROGRESS_MEDIAN = 0.09
#: 90th percentile of that progress (%)
REAL_FINAL_PROGRESS_P90 = 7.55
#: highest progress any coin reached (%)
REAL_PEAK_PROGRESS_MAX = 66.2

#: where each `Calibration` figure of a default run (seed 7, 100 minutes) must land; wide where the
#: real figure rests on a handful of coins
CALIBRATION_BANDS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "gap_median_s": (REAL_GAP_MEDIAN_S * 0.85, REAL_GAP_MEDIAN_S * 1.15),
        "gap_p90_s": (REAL_GAP_P90_S * 0.75, REAL_GAP_P90_S * 1.25),
        "rows_per_coin_median": (REAL_ROWS_PER_COIN_MEDIAN * 0.5, REAL_ROWS_PER_COIN_MEDIAN * 2.0),
        "lifetime_median_s": (REAL_LIFETIME_MEDIAN_S * 0.5, REAL_LIFETIME_MEDIAN_S * 2.0),
        "moving_row_share": (REAL_MOVING_ROW_SHARE * 0.5, REAL_MOVING_ROW_SHARE * 2.5),
        "up_move_share": (REAL_UP_MOVE_SHARE - 0.12, REAL_UP_MOVE_SHARE + 0.12),
        "move_abs_median_pct": (REAL_MOVE_ABS_MEDIAN_PCT * 0.33, REAL_MOVE_ABS_MEDIAN_PCT * 3.5),
        "move_abs_p90_pct": (REAL_MOVE_ABS_P90_PCT * 0.6, REAL_MOVE_ABS_P90_PCT * 1.8),
        "rise_10_share": (REAL_RISE_10_SHARE - 0.05, REAL_RISE_10_SHARE + 0.08),
        "crash_50_share": (0.0, REAL_CRASH_50_SHARE + 0.05),
        "final_progress_median": (0.0, REAL_FINAL_PROGRESS_MEDIAN * 5.0),
        "final_progress_p90": (REAL_FINAL_PROGRESS_P90 * 0.5, REAL_FINAL_PROGRESS_P90 * 2.0),
        "peak_progress_max": (REAL_PEAK_PROGRESS_MAX * 0.5, 100.0),
    }
)

# Model parameters, chosen so a default run lands in the bands above.
#: row gap: a median that grows with the coin's buyers (the tracker fetches more per busy coin) ...
GAP_BASE_S = 5.3
GAP_PER_BUYER_S = 1.2
GAP_FREE_BUYERS = 6
#: ... times a log-normal jitter (p90/median ≈ 1.55 per coin in the real file)
GAP_SIGMA = 0.36
GAP_MIN_S = 1.5
#: how long a coin stays alive after its last trade: log-normal, heavy-tailed (a few linger for hours)
QUIET_MEDIAN_S = 50.0
QUIET_SIGMA = 3.2
#: no coin lives longer than this
LIFETIME_MAX_S = 4 * 3600.0
#: pumps and rugs start within this many seconds of launch
FATE_START_MAX_S = 300.0
#: trading activity decays exponentially after launch with this (log-normal) time constant
ACTIVITY_TAU_MEDIAN_S = 70.0
ACTIVITY_TAU_SIGMA = 0.6
#: ordinary trades of a coin: 1 + Poisson(this)
TRADES_MEAN = 0.6
#: share of ordinary trades that are dust buys of 0.001–0.003 SOL (each from a new wallet)
DUST_SHARE = 0.65
#: share of the other ordinary trades that are buys
BUY_SHARE = 0.5
#: size of a non-dust trade in SOL: log-normal
TRADE_MEDIAN_SOL = 0.25
TRADE_SIGMA = 1.2
#: an ordinary seller sells between this share and all of the traders' tokens
SELL_SHARE_MIN = 0.5
#: chance that a non-dust buyer is a wallet not seen on the coin before
NEW_BUYER_CHANCE = 0.6
#: the creator's buy at launch: none with this chance, else log-normal
NO_DEV_BUY_CHANCE = 0.1
DEV_BUY_MEDIAN_SOL = 0.6
DEV_BUY_SIGMA = 1.3
#: wallets that bought before the first row: log-normal, at least 1
LAUNCH_BUYERS_MEDIAN = 4.0
LAUNCH_BUYERS_SIGMA = 1.1
#: chance that the creator sells its whole bag (most tokens sold so far) while the coin is young
DEV_EXIT_CHANCE = 0.85
#: a coin carries the whale flag from launch with this chance, or once a buy reaches WHALE_BUY_SOL
WHALE_CHANCE = 0.8
WHALE_BUY_SOL = 2.0
#: a coin is bot-like with this chance: its trades are dust round trips (volume without price moves)
BOT_LIKE_CHANCE = 0.02
BOT_TRADES_FACTOR = 6.0
#: a pump: 4–12 buys (2× ordinary size, mostly new wallets) within 15–60 s, then 1–4 profit takers
PUMP_BUYS = (4, 12)
PUMP_BUY_SCALE = 2.0
PUMP_SELLS = (1, 4)
#: a rug: 5–12 large buys build the price, then one wallet sells 50–95 % of all tokens sold
RUG_BUYS = (5, 12)
RUG_BUY_SCALE = 8.0
#: a runner: 40–120 trades over 5–30 minutes, mostly buys from new wallets
RUNNER_TRADES = (40, 120)
RUNNER_BUY_SHARE = 0.72
RUNNER_BUY_SCALE = 4.0
RUNNER_SELL_SHARE = (0.005, 0.03)


class Fate(enum.Enum):
    """What happens to a coin beyond its ordinary trades."""

    DUD = "dud"  #: a few trades, then it fades
    PUMP = "pump"  #: a burst of buys from new wallets, then profit taking
    RUG = "rug"  #: the creator or a whale dumps most of the supply at once
    RUNNER = "runner"  #: sustained buying that climbs towards graduation


#: chance of each fate
FATE_WEIGHTS: Mapping[Fate, float] = MappingProxyType(
    {Fate.DUD: 0.92, Fate.PUMP: 0.04, Fate.RUG: 0.025, Fate.RUNNER: 0.015}
)

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


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


@dataclass(frozen=True, kw_only=True, slots=True)
class Trade:
    """One planned trade of a coin."""

    at: float  #: seconds after launch
    buy_sol: float = 0.0  #: SOL paid in by a buyer
    sell_share: float = 0.0  #: share of the traders' tokens sold back (a rug sells most of them at once)
    new_buyer: bool = False  #: the buyer is a wallet new to the coin
    round_trip: bool = False  #: the buyer sells the tokens straight back (wash trading)


@dataclass(frozen=True, kw_only=True)
class CoinPlan:
    """Everything decided about a coin at its launch."""

    mint: str
    fate: Fate
    lifetime: float  #: seconds from launch to its last row (unless it graduates earlier)
    trades: tuple[Trade, ...]  #: sorted by time
    whale: bool
    bot_like: bool
    launch_buyers: int


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


def plan_coin(rng: random.Random) -> CoinPlan:
    """Decide a coin's mint, fate, trades and how long it stays alive after its last trade."""
    fate = rng.choices(list(FATE_WEIGHTS), weights=list(FATE_WEIGHTS.values()))[0]
    bot_like = rng.random() < BOT_LIKE_CHANCE
    tau = rng.lognormvariate(math.log(ACTIVITY_TAU_MEDIAN_S), ACTIVITY_TAU_SIGMA)
    trades = sorted(
        [*_launch_trades(rng, tau), *_ordinary_trades(rng, tau, bot_like), *_fate_trades(rng, fate)],
        key=lambda trade: trade.at,
    )
    return CoinPlan(
        mint=_mint(rng),
        fate=fate,
        lifetime=min(trades[-1].at + _quiet_tail(rng, fate), LIFETIME_MAX_S),
        trades=tuple(trades),
        whale=rng.random() < WHALE_CHANCE,
        bot_like=bot_like,
        launch_buyers=max(round(rng.lognormvariate(math.log(LAUNCH_BUYERS_MEDIAN), LAUNCH_BUYERS_SIGMA)), 1),
    )


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


def _launch_trades(rng: random.Random, tau: float) -> list[Trade]:
    if rng.random() < NO_DEV_BUY_CHANCE:
        return []
    dev_buy = Trade(at=0.0, buy_sol=rng.lognormvariate(math.log(DEV_BUY_MEDIAN_SOL), DEV_BUY_SIGMA))
    if rng.random() < DEV_EXIT_CHANCE:
        return [dev_buy, Trade(at=rng.expovariate(1.0 / tau), sell_share=rng.uniform(0.9, 1.0))]
    return [dev_buy]


def _ordinary_trades(rng: random.Random, tau: float, bot_like: bool) -> list[Trade]:
    count = 1 + _poisson(rng, TRADES_MEAN * (BOT_TRADES_FACTOR if bot_like else 1.0))
    return [_ordinary_trade(rng, rng.expovariate(1.0 / tau), bot_like) for _ in range(count)]


def _ordinary_trade(rng: random.Random, at: float, bot_like: bool) -> Trade:
    if bot_like:
        return Trade(at=at, buy_sol=_dust(rng), round_trip=True)
    if rng.random() < DUST_SHARE:
        return Trade(at=at, buy_sol=_dust(rng), new_buyer=True)
    if rng.random() < BUY_SHARE:
        return Trade(at=at, buy_sol=_trade_size(rng), new_buyer=rng.random() < NEW_BUYER_CHANCE)
    return Trade(at=at, sell_share=rng.uniform(SELL_SHARE_MIN, 1.0))


def _fate_trades(rng: random.Random, fate: Fate) -> list[Trade]:
    if fate is Fate.PUMP:
        return _pump_trades(rng, rng.uniform(0.0, FATE_START_MAX_S))
    if fate is Fate.RUG:
        return _rug_trades(rng, rng.uniform(30.0, FATE_START_MAX_S))
    if fate is Fate.RUNNER:
        return _runner_trades(rng, rng.uniform(300.0, 1800.0))
    return []


def _quiet_tail(rng: random.Random, fate: Fate) -> float:
    if fate is Fate.RUG:
        return rng.uniform(20.0, 120.0)
    return rng.lognormvariate(math.log(QUIET_MEDIAN_S), QUIET_SIGMA)


def _pump_trades(rng: random.Random, start: float) -> list[Trade]:
    burst = rng.uniform(15.0, 60.0)
    buys = [
        Trade(at=start + rng.uniform(0.0, burst), buy_sol=PUMP_BUY_SCALE * _trade_size(rng), new_buyer=True)
        for _ in range(rng.randint(*PUMP_BUYS))
    ]
    sells = [
        Trade(at=start + burst + rng.uniform(0.0, 180.0), sell_share=rng.uniform(0.05, 0.3))
        for _ in range(rng.randint(*PUMP_SELLS))
    ]
    return buys + sells


def _rug_trades(rng: random.Random, dump_at: float) -> list[Trade]:
    buys = [
        Trade(at=rng.uniform(0.0, dump_at), buy_sol=RUG_BUY_SCALE * _trade_size(rng), new_buyer=True)
        for _ in range(rng.randint(*RUG_BUYS))
    ]
    return [*buys, Trade(at=dump_at, sell_share=rng.uniform(0.5, 0.95))]


def _runner_trades(rng: random.Random, span: float) -> list[Trade]:
    return [_runner_trade(rng, rng.uniform(0.0, span)) for _ in range(rng.randint(*RUNNER_TRADES))]


def _runner_trade(rng: random.Random, at: float) -> Trade:
    if rng.random() < RUNNER_BUY_SHARE:
        return Trade(at=at, buy_sol=RUNNER_BUY_SCALE * _trade_size(rng), new_buyer=True)
    return Trade(at=at, sell_share=rng.uniform(*RUNNER_SELL_SHARE))


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


def _dust(rng: random.Random) -> float:
    return rng.uniform(0.001, 0.003)


def _trade_size(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(TRADE_MEDIAN_SOL), TRADE_SIGMA)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means used here
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _mint(rng: random.Random) -> str:
    return "".join(rng.choice(_BASE58) for _ in range(40)) + "pump"


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"time {moment} is naive; pass an aware UTC datetime")
