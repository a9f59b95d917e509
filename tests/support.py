"""Plain helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from coinfleet.events.cursor import Event
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.metrics import MetricRow
from coinfleet.pipeline.rules import Tag
from coinfleet.pipeline.store import NewPrediction

T_START = datetime(2026, 1, 1, tzinfo=UTC)


def market_rows(*, coins: int = 30, seconds: float = 900, seed: int = 1) -> list[MetricRow]:
    """A simulated market history: deterministic, quick to make."""
    config = SimulatorConfig(coins=coins, seed=seed, launch_window_seconds=seconds / 3)
    return MarketSimulator(config, T_START).history(seconds)


def coinfleet_json(*args: str, env: Mapping[str, str], timeout: float) -> tuple[list[str], Any]:
    """Run `python -m coinfleet ARGS --json`; assert it succeeded and return the lines it printed before
    its JSON, and the JSON object on its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "coinfleet", *args, "--json"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *before, last = done.stdout.strip().splitlines()
    return before, json.loads(last)


T_PREDICTED = datetime(2026, 3, 1, tzinfo=UTC)  #: metric times of `new_prediction`
#: a transaction id after every real one: made-up events and cursors use it (a cursor only moves forward)
LATE_TX = 10**12


def new_prediction(
    mint: str,
    seconds: float,
    probability: float,
    tag: Tag,
    *,
    phase: int | None = 2,
    volume: float = 4.0,
    seq: int = 1,
    ts: datetime | None = None,
) -> NewPrediction:
    """A prediction to store, on a made-up metric row `seconds` after T_PREDICTED (or at `ts`)."""
    ts = ts or T_PREDICTED + timedelta(seconds=seconds)
    metric = MetricRow(
        mint=mint, timestamp=ts, phase_id_at_time=phase, price_open=1.0, price_high=1.5, price_low=0.5,
        price_close=1.25, market_cap_close=30.0, volume_sol=volume, buy_volume_sol=3.0, sell_volume_sol=1.0,
        num_buys=3, num_sells=1, unique_wallets=4,
    )  # fmt: skip
    event = Event(tx=LATE_TX, seq=seq, mint=mint, ts=ts, inserted_at=ts)
    return NewPrediction(event=event, row=metric, probability=probability, tag=tag)
