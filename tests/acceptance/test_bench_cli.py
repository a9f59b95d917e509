"""`coinfleet bench NAME --json` end to end: a table, the machine's figures, and one JSON object last."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import coinfleet_json

pytestmark = pytest.mark.slow


@pytest.fixture
def env(server_dsn: str, tmp_path: Path) -> dict[str, str]:
    """The environment a benchmark runs in: the test server, a home of its own, quiet logs."""
    return {
        **os.environ,
        "DATABASE_URL": server_dsn,
        "COINFLEET_HOME": str(tmp_path),
        "COINFLEET_LOG_LEVEL": "warning",
    }


@pytest.mark.timeout(300)
def test_bench_priority_prints_its_verdict_and_the_machine_it_ran_on(env: dict[str, str]) -> None:
    table, result = coinfleet_json("bench", "priority", env=env, timeout=280)
    assert [m["weight"] for m in result["models"]] == [1.0, 2.0, 4.0]
    assert result["min_served"] > 0  # nobody starves, whatever this machine's speed
    machine = result["machine"]
    assert machine["cores"] == os.cpu_count()
    assert machine["loop_seconds"] > 0
    assert any(line.startswith("machine:") for line in table)


@pytest.mark.timeout(300)
def test_bench_alerts_reports_rates_and_an_outage_without_dead_or_duplicate_alerts(
    env: dict[str, str],
) -> None:
    args = ("bench", "alerts", "--models", "2", "--alerts", "40", "--scale", "300", "--outage-minutes", "10")
    table, result = coinfleet_json(*args, env=env, timeout=280)
    assert result["alerts_per_s_per_model"] > 0 and result["alerts_per_s_per_model_serial"] > 0
    assert result["dead_after_outage"] == 0 and result["duplicates"] == 0
    assert result["order_per_coin_kept"] and result["order_per_model_kept"]
    assert result["outage"]["alerts"] == 80 and result["outage"]["down_seconds"] == 2.0
    assert result["alone"]["connections"] <= result["in_flight_per_model"]  # kept alive
    assert any("dead after a 10 min outage" in line for line in table)


@pytest.mark.timeout(600)
def test_bench_api_prints_its_three_keys(env: dict[str, str]) -> None:
    small = ("--models", "2", "--rate", "50", "--seconds", "2", "--history", "2000")
    _, result = coinfleet_json("bench", "api", *small, env=env, timeout=580)
    assert {"lanes_p99_ratio", "api_p99_ms", "stream_lag_p99_ms"} <= set(result)
    assert result["api_p99_ms"] > 0 and result["requests"] > 0
    assert set(result["cores_by_part"]) == {"alone", "with_api"}
    assert "lanes' process" in result["cores_by_part"]["alone"]
    assert result["failures"] == 0, result["first_failures"]
    assert result["stream_events"] > 0
