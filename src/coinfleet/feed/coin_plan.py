"""What a simulated coin will do, decided at its launch: its fate, its trades and how long it lives.

The parameters below are chosen so that a default simulator run lands in the calibration bands
(`coinfleet.feed.calibration.CALIBRATION_BANDS`); docs/simulator.md describes the model.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

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
#: a coin carries the whale flag from launch with this chance (the simulator also sets it on a large buy)
WHALE_CHANCE = 0.8
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
