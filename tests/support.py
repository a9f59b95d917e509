"""Plain helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.metrics import MetricRow

T_START = datetime(2026, 1, 1, tzinfo=UTC)


def market_rows(*, coins: int = 30, seconds: float = 900, seed: int = 1) -> list[MetricRow]:
    """A simulated market history: deterministic, quick to make."""
    config = SimulatorConfig(coins=coins, seed=seed, launch_window_seconds=seconds / 3)
    return MarketSimulator(config, T_START).history(seconds)
