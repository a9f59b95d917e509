"""The README's promise: `coinfleet demo --json` on a fresh home ends with a summary of ≥ 3 scoring models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import coinfleet_json

pytestmark = pytest.mark.slow


def run_demo(home: Path, *extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COINFLEET_DATABASE_URL")}
    env.update({"COINFLEET_HOME": str(home), "COINFLEET_LOG_LEVEL": "warning", "COINFLEET_API_PORT": "0"})
    _, summary = coinfleet_json("demo", *extra, env=env, timeout=300)
    assert isinstance(summary, dict)
    return summary


def assert_models_scored(summary: dict[str, object]) -> None:
    models = summary["models"]
    assert isinstance(models, list)
    assert len(models) >= 3
    assert all(m["predictions"] > 0 for m in models)
    assert isinstance(summary["events"], int)
    assert summary["events"] > 0


@pytest.mark.timeout(300)
def test_demo_on_the_simulator_with_the_embedded_database(tmp_path: Path) -> None:
    assert_models_scored(run_demo(tmp_path / "home", "--duration", "15"))


@pytest.mark.timeout(300)
def test_demo_replaying_the_recorded_file(tmp_path: Path, recorded_file: Path) -> None:
    summary = run_demo(tmp_path / "home", "--duration", "20", "--data", str(recorded_file))
    assert_models_scored(summary)
    models = summary["models"]
    assert isinstance(models, list)
    assert all(0 <= m["brier_validation"] <= 1 for m in models), "trained models report their calibration"
