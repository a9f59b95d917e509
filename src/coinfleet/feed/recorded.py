"""Recorded tracker files (CSV) mapped to `coin_metrics` rows, as docs/data-mapping.md describes."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from coinfleet.errors import DataFormatError
from coinfleet.feed import curve
from coinfleet.metrics import MetricRow

#: columns the mapping reads; the file may carry more (sol_flow, progress, top3_pct, ...)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "mint",
    "sol_in_pool",
    "unique_buyers",
    "whale_flag",
    "buy_pressure",
    "sell_pressure",
    "bot_like",
)
#: (phase id, coin age in seconds at which it starts), by age since the coin's first row
PHASES: tuple[tuple[int, float], ...] = ((1, 0.0), (2, 120.0), (3, 600.0), (4, 1800.0))
#: unique_signer_ratio written for bot-like activity; low enough for any wash-trading rule to notice
BOT_SIGNER_RATIO = 0.2

#: a coin and an instant: coin_metrics holds one row for each
_Key = tuple[str, datetime]
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Observation:
    """One tracker observation of one coin: the recorded columns the mapping needs."""

    mint: str
    timestamp: datetime  #: aware UTC
    sol_in_pool: float  #: virtual SOL reserve
    unique_buyers: int  #: distinct buyer wallets so far
    buy_pressure: float  #: running buy volume score (SOL)
    sell_pressure: float  #: running sell volume score (SOL)
    whale: bool  #: a large buyer is present
    bot_like: bool  #: activity looks automated


@dataclass(frozen=True, kw_only=True)
class RowError:
    """A line of a recorded file that was skipped, and why."""

    line: int  #: 1-based line number in the file
    message: str


@dataclass(frozen=True, kw_only=True)
class RecordedFile:
    """The rows read from a recorded file, the lines skipped, and the number of data lines seen."""

    rows: list[MetricRow]
    errors: list[RowError]
    total_lines: int


@dataclass(kw_only=True, slots=True)
class _CoinState:
    first_seen: datetime
    last: Observation


class RecordedMapper:
    """Maps observations, in time order per coin, to metric rows; keeps each coin's previous observation."""

    def __init__(self) -> None:
        self._coins: dict[str, _CoinState] = {}

    def map(self, obs: Observation) -> MetricRow:
        """The metric row of this observation, a bar since the coin's previous one."""
        state = self._coins.get(obs.mint)
        if state is None:
            state = _CoinState(first_seen=obs.timestamp, last=obs)
            self._coins[obs.mint] = state
        row = _metric_row(state.last, obs, age_seconds=(obs.timestamp - state.first_seen).total_seconds())
        state.last = obs
        return row

    def forget(self, mint: str) -> None:
        """Drop a coin's state (it stopped trading); a later observation starts it afresh."""
        self._coins.pop(mint, None)


def read_recorded(path: Path) -> RecordedFile:
    """Read a recorded file; bad lines become `RowError`s, good rows come out sorted by timestamp."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = _read_header(handle.readline(), path)
        observations, errors, total = _parse_lines(handle, header)
    observations.sort(key=lambda obs: obs.timestamp)
    return RecordedFile(rows=map_observations(observations), errors=errors, total_lines=total)


def map_observations(observations: Iterable[Observation]) -> list[MetricRow]:
    """Map time-ordered observations with a fresh mapper."""
    mapper = RecordedMapper()
    return [mapper.map(obs) for obs in observations]


def phase_for_age(age_seconds: float) -> int:
    """The lifecycle phase of a coin this many seconds after it was first seen."""
    phase = PHASES[0][0]
    for phase_id, starts_at in PHASES:
        if age_seconds >= starts_at:
            phase = phase_id
    return phase


def parse_observation(fields: dict[str, str]) -> Observation:
    """One observation from its recorded text fields; raises ValueError saying what is wrong."""
    mint = fields["mint"].strip()
    if not mint:
        raise ValueError("mint is empty")
    sol_in_pool = _parse_number(fields, "sol_in_pool")
    if sol_in_pool <= 0.0:
        raise ValueError(f"sol_in_pool must be positive, got {sol_in_pool}")
    return Observation(
        mint=mint,
        timestamp=_parse_timestamp(fields["timestamp"]),
        sol_in_pool=sol_in_pool,
        unique_buyers=_parse_count(fields, "unique_buyers"),
        buy_pressure=_parse_non_negative(fields, "buy_pressure"),
        sell_pressure=_parse_non_negative(fields, "sell_pressure"),
        whale=_parse_flag(fields, "whale_flag"),
        bot_like=_parse_flag(fields, "bot_like"),
    )


def _read_header(line: str, path: Path) -> list[str]:
    header = [name.strip() for name in _split(line)]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if len(missing) == len(REQUIRED_COLUMNS):
        raise DataFormatError(
            f"{path} is not a recorded metrics file (its first line names none of the columns)"
            f" — give a CSV whose header has {', '.join(REQUIRED_COLUMNS)}"
        )
    if missing:
        lacking, needed = ", ".join(missing), ", ".join(REQUIRED_COLUMNS)
        raise DataFormatError(f"{path} lacks the columns {lacking} — a recorded file needs {needed}")
    return header


def _parse_lines(lines: Iterable[str], header: list[str]) -> tuple[list[Observation], list[RowError], int]:
    observations: list[Observation] = []
    errors: list[RowError] = []
    first_lines: dict[_Key, int] = {}
    total = 0
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        total += 1
        try:
            observation = parse_observation(_fields(header, _split(line)))
            _check_unique(observation, number, first_lines)
        except (ValueError, csv.Error) as exc:
            errors.append(RowError(line=number, message=str(exc)))
        else:
            observations.append(observation)
    return observations, errors, total


def _check_unique(observation: Observation, number: int, first_lines: dict[_Key, int]) -> None:
    # coin_metrics holds one row per coin and time; a repeat would be a second bar at the same instant
    key = (observation.mint, observation.timestamp)
    if key in first_lines:
        raise ValueError(f"same mint and timestamp as line {first_lines[key]}")
    first_lines[key] = number


def _split(line: str) -> list[str]:
    # one physical line is one record in this format, so line numbers stay exact
    return next(csv.reader([line]), [])


def _fields(header: list[str], values: list[str]) -> dict[str, str]:
    if len(values) != len(header):
        raise ValueError(f"expected {len(header)} fields, got {len(values)}")
    return dict(zip(header, values, strict=True))


def _parse_timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _parse_number(fields: dict[str, str], name: str) -> float:
    text = fields[name]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not a finite number")
    return value


def _parse_non_negative(fields: dict[str, str], name: str) -> float:
    value = _parse_number(fields, name)
    if value < 0.0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _parse_count(fields: dict[str, str], name: str) -> int:
    value = _parse_non_negative(fields, name)
    if not value.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value}")
    return int(value)


def _parse_flag(fields: dict[str, str], name: str) -> bool:
    text = fields[name].strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} {fields[name]!r} is not True or False")


def _metric_row(prev: Observation, obs: Observation, *, age_seconds: float) -> MetricRow:
    open_, close = curve.price(prev.sol_in_pool), curve.price(obs.sol_in_pool)
    buy, sell = _bar_volumes(prev, obs)
    num_buys = max(obs.unique_buyers - prev.unique_buyers, 1 if buy > 0.0 else 0)
    num_sells = 1 if sell > 0.0 else 0
    high, low = max(open_, close), min(open_, close)
    return MetricRow(
        mint=obs.mint,
        timestamp=obs.timestamp,
        phase_id_at_time=phase_for_age(age_seconds),
        price_open=open_,
        price_high=high,
        price_low=low,
        price_close=close,
        market_cap_close=curve.market_cap(obs.sol_in_pool),
        volume_sol=buy + sell,
        buy_volume_sol=buy,
        sell_volume_sol=sell,
        num_buys=num_buys,
        num_sells=num_sells,
        unique_wallets=num_buys + num_sells,
        buy_pressure_ratio=_pressure_ratio(obs),
        whale_buy_volume_sol=buy if obs.whale else 0.0,
        volatility_pct=(high - low) / open_ * 100.0,
        unique_signer_ratio=BOT_SIGNER_RATIO if obs.bot_like else 1.0,
        net_volume_sol=buy - sell,
    )


def _bar_volumes(prev: Observation, obs: Observation) -> tuple[float, float]:
    # pressures are running sums that the tracker sometimes lowers (a window); the pool's own move is a floor
    flow = obs.sol_in_pool - prev.sol_in_pool
    buy = max(obs.buy_pressure - prev.buy_pressure, flow, 0.0)
    sell = max(obs.sell_pressure - prev.sell_pressure, -flow, 0.0)
    return buy, sell


def _pressure_ratio(obs: Observation) -> float | None:
    total = obs.buy_pressure + obs.sell_pressure
    return obs.buy_pressure / total if total > 0.0 else None
