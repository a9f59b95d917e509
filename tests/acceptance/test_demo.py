"""The README's promise: `coinfleet demo --json` on a fresh home ends with a summary of ≥ 3 scoring models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run_demo(home: Path, *extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COINFLEET_DATABASE_URL")}
    env.update({"COINFLEET_HOME": str(home), "COINFLEET_LOG_LEVEL": "warning"})
    done = subprocess.run(
        [sys.executable, "-m", "coinfleet", "demo", "--json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
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
    assert_models_scored(run_demo(tmp_path / "home", "--duration", "20", "--data", str(recorded_file)))
