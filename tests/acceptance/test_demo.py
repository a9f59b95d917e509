"""The README's promise: `coinfleet demo --json` on a fresh home ends with a summary of ≥ 3 scoring models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import coinfleet_json

pytestmark = pytest.mark.slow


def run_demo(home: Path, *extra: str) -> dict[str, object]:
    _, summary = coinfleet_json("demo", *extra, env=demo_env(home), timeout=300)
    assert isinstance(summary, dict)
    return summary


def assert_models_scored(summary: dict[str, object]) -> None:
    models = summary["models"]
    assert isinstance(models, list)
    assert len(models) >= 3
    assert all(m["predictions"] > 0 for m in models)
    assert isinstance(summary["events"], int)
    assert summary["events"] > 0


def demo_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COINFLEET_DATABASE_URL")}
    env.update({"COINFLEET_HOME": str(home), "COINFLEET_LOG_LEVEL": "warning", "COINFLEET_API_PORT": "0"})
    return env


@pytest.mark.timeout(600)
def test_demo_on_the_simulator_with_the_embedded_database(tmp_path: Path) -> None:
    summary = run_demo(tmp_path / "home", "--duration", "15")
    assert_models_scored(summary)
    assert summary["database"] == "main"
    env = demo_env(tmp_path / "home")
    try:
        _, listed = coinfleet_json("models", "list", env=env, timeout=120)
        _, stats = coinfleet_json("stats", env=env, timeout=120)
        again = subprocess.run(
            [sys.executable, "-m", "coinfleet", "demo", "--duration", "3", "--no-http"],
            env={**env, "COINFLEET_LOG_LEVEL": "info"},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    finally:
        subprocess.run([sys.executable, "-m", "coinfleet", "db", "stop"], env=env, timeout=120, check=False)
    scored = {m["name"] for m in summary["models"]}  # type: ignore[attr-defined]
    assert scored <= {m["name"] for m in listed}, "the rest of the CLI sees the demo's models"
    counted = {m["name"]: m["predictions"] for m in stats["models"]}
    assert all(counted[name] > 0 for name in scored), "and their predictions"
    assert_trained_and_compiled_once(again.stderr, scored)


def assert_trained_and_compiled_once(log: str, names: set[str]) -> None:
    """A second run reuses the trained bundles, so the artifacts' hashes match and the compiled graphs
    come from the cache: no training, no conversion."""
    assert "training_demo_model" not in log
    served = [line for line in log.splitlines() if "onnx_compiled" in line or "onnx_fallback" in line]
    assert {name for name in names if any(f"model={name}" in line for line in served)} == names, log[-3000:]
    assert all("cached=True" in line for line in served), served


@pytest.mark.timeout(300)
def test_demo_replaying_the_recorded_file(tmp_path: Path, recorded_file: Path) -> None:
    summary = run_demo(tmp_path / "home", "--duration", "20", "--data", str(recorded_file))
    assert_models_scored(summary)
    models = summary["models"]
    assert isinstance(models, list)
    assert all(0 <= m["brier_validation"] <= 1 for m in models), "trained models report their calibration"
    assert all("hit_rate_within" in m and "by_tag" in m for m in models)
