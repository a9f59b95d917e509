"""Plain helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.metrics import MetricRow

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
