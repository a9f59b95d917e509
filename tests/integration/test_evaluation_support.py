"""Helpers for the evaluation tests: hand-made bars and predictions written straight into the tables."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from coinfleet.evaluation.outcomes import FeedTimes, Outcome, PricePath
from coinfleet.evaluation.rounds import RoundConfig
from coinfleet.targets import TargetSpec

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = 30.0
CONFIG = RoundConfig(grace_seconds=GRACE, base_quota=1000)


@dataclass(frozen=True, kw_only=True)
class Bar:
    """One coin_metrics row at T0 + `at` seconds."""

    at: float
    close: float | None
    high: float | None = None
    low: float | None = None
    market_cap: float | None = None

    @property
    def ts(self) -> datetime:
        """The bar's time."""
        return T0 + timedelta(seconds=self.at)


def _or_close(value: float | None, close: float | None) -> float | None:
    return close if value is None else value


async def insert_bars(conn: asyncpg.Connection, mint: str, bars: Sequence[Bar]) -> None:
    """Write the bars of one coin (high/low default to the close)."""
    await conn.executemany(
        'INSERT INTO coin_metrics (mint, "timestamp", price_high, price_low, price_close, market_cap_close)'
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [
            (mint, b.ts, _or_close(b.high, b.close), _or_close(b.low, b.close), b.close, b.market_cap)
            for b in bars
        ],
    )


async def insert_model(conn: asyncpg.Connection, name: str, target: TargetSpec, **settings: object) -> int:
    """A registry row good enough to own predictions (never scored)."""
    model_id: int = await conn.fetchval(
        "INSERT INTO coinfleet_models (name, algorithm, format, artifact, artifact_sha256, features,"
        " target, settings) VALUES ($1, 'none', 'none', '\\x00'::bytea, 'x', '{}', $2::jsonb, $3::jsonb)"
        " RETURNING id",
        name,
        json.dumps(target.to_dict()),
        json.dumps(settings),
    )
    return model_id


async def insert_prediction(
    conn: asyncpg.Connection,
    model_id: int,
    *,
    mint: str,
    at: float,
    p0: float | None,
    target: TargetSpec,
    prediction: int = 1,
) -> int:
    """A prediction made at T0 + `at` with close p0 and its own target snapshot; its id."""
    ts = T0 + timedelta(seconds=at)
    prediction_id: int = await conn.fetchval(
        "INSERT INTO coinfleet_predictions (model_id, model_version, mint, metric_ts, probability,"
        " prediction, tag, alert_threshold, target, evaluate_at, price_close, event_tx, event_seq)"
        " VALUES ($1, 1, $2, $3, $4, $5, $6, 0.7, $7::jsonb, $8, $9, '1'::xid8, 1) RETURNING id",
        model_id,
        mint,
        ts,
        0.9 if prediction else 0.2,
        prediction,
        "alert" if prediction else "negative",
        json.dumps(target.to_dict()),
        ts + timedelta(seconds=target.horizon_seconds),
        p0,
    )
    return prediction_id


def price_path(bars: Sequence[Bar], *, since: float) -> PricePath:
    """The pure rules' view of the same bars (rows at or after `since`, the prediction time)."""
    later = sorted((b for b in bars if b.at >= since), key=lambda b: b.at)

    def column(values: list[float | None]) -> np.ndarray:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    return PricePath(
        t=np.array([b.ts.timestamp() for b in later], dtype=np.float64),
        high=column([_or_close(b.high, b.close) for b in later]),
        low=column([_or_close(b.low, b.close) for b in later]),
        close=column([b.close for b in later]),
        columns={"market_cap_close": column([b.market_cap for b in later])},
    )


def feed_of(*coins: Sequence[Bar], clock: datetime | None = None) -> FeedTimes:
    """The pure rules' view of the feed: the row times of every coin, and the clock of the round."""
    times = [b.ts.timestamp() for bars in coins for b in bars]
    return FeedTimes.of(times, clock=None if clock is None else clock.timestamp())


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def outcome_of(row: asyncpg.Record) -> Outcome:
    """A stored evaluation read back as the pure rules' Outcome."""
    return Outcome(
        status=row["status"],
        change_at_horizon_pct=row["change_at_horizon_pct"],
        horizon_observed_at=_epoch(row["horizon_observed_at"]),
        reached_at_horizon=row["reached_at_horizon"],
        hit_within=row["hit_within"],
        hit_at=_epoch(row["hit_at"]),
        max_change_pct=row["max_change_pct"],
        max_change_at=_epoch(row["max_change_at"]),
        min_change_pct=row["min_change_pct"],
        min_change_at=_epoch(row["min_change_at"]),
    )


async def stored(conn: asyncpg.Connection, prediction_id: int) -> asyncpg.Record | None:
    """The evaluation row of one prediction, None while it is pending."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM coinfleet_evaluations WHERE prediction_id = $1", prediction_id
    )
    return row
