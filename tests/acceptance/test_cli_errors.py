"""Every command given bad input prints one line, `error: …`, exits 1 and shows no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coinfleet import __version__


def coinfleet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coinfleet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(db_dsn: str, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COINFLEET_LOG_LEVEL")}
    return {**base, "COINFLEET_DATABASE_URL": db_dsn, "COINFLEET_HOME": str(tmp_path / "home")}


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "text.csv": b"hello,world\n1,2\n",
        "binary.csv": bytes(range(256)) * 4,
        "model.json": b'{"not": "a model"}',
        "model.onnx": b"\x00\x01 not onnx",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in files}


def assert_one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    return lines[0]


def test_bad_files_to_every_file_command(env: dict[str, str], bad_files: dict[str, Path]) -> None:
    for name in ("text.csv", "binary.csv"):
        path = str(bad_files[name])
        for args in (("replay", path), ("backtest", path), ("demo", "--data", path)):
            line = assert_one_error_line(coinfleet(*args, env=env))
            assert "not a recorded metrics file" in line and " — " in line
    target = ("--target", "up 10% in 5m", "--features", "price_close")
    for name in ("model.json", "model.onnx"):
        assert_one_error_line(coinfleet("models", "import", str(bad_files[name]), *target, env=env))
    assert_one_error_line(coinfleet("replay", str(bad_files["text.csv"]) + ".missing", env=env))


def test_unknown_model_names_in_every_command(env: dict[str, str]) -> None:
    for args in (
        ("stats", "--model", "nope"),
        ("models", "show", "nope"),
        ("models", "set", "nope", "alert_threshold=0.5"),
        ("models", "activate", "nope"),
        ("alerts", "list", "--model", "nope"),
    ):
        line = assert_one_error_line(coinfleet(*args, env=env))
        assert "no model named 'nope'" in line, (args, line)


def test_bad_settings_and_usage(env: dict[str, str]) -> None:
    line = assert_one_error_line(coinfleet("stats", env={**env, "COINFLEET_LOG_LEVEL": "loud"}))
    assert "COINFLEET_LOG_LEVEL" in line
    line = assert_one_error_line(coinfleet("stats", env={**env, "COINFLEET_GC_THRESHOLDS": "many"}))
    assert line.startswith("error: COINFLEET_GC_THRESHOLDS='many': not a JSON list; expected list of 3")
    assert_one_error_line(coinfleet("stats", "--since", "yesterdayish", env=env))
    assert_one_error_line(coinfleet("no-such-command", env=env))


def test_debug_shows_the_traceback(env: dict[str, str]) -> None:
    done = coinfleet("--debug", "stats", env={**env, "COINFLEET_LOG_LEVEL": "loud"})
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_version(env: dict[str, str]) -> None:
    done = coinfleet("--version", env=env)
    assert done.returncode == 0 and done.stdout.strip() == f"coinfleet {__version__}"


def test_help_shows_flags_as_flags(env: dict[str, str]) -> None:
    done = coinfleet("stats", "--help", env=env)
    assert done.returncode == 0
    json_line = next(line for line in done.stdout.splitlines() if "--json" in line)
    assert "<bool>" not in json_line and "--no-json" not in json_line


@pytest.mark.timeout(900)  # some 35 processes, each importing the CLI
def test_every_command_given_a_wrong_name_file_or_setting(
    env: dict[str, str], bad_files: dict[str, Path], recorded_file: Path
) -> None:
    """The acceptance matrix of issue 28: each command, run wrong, says what was wrong in one line."""
    missing, csv, bundle = (
        str(bad_files["text.csv"]) + ".missing",
        str(bad_files["text.csv"]),
        str(bad_files["model.json"]),
    )
    wrong_name = [
        ("stats", "--model", "nope"),
        ("backtest", str(recorded_file), "--model", "nope"),
        ("alerts", "list", "--model", "nope"),
        ("alerts", "retry", "--dead", "--model", "nope"),
        ("alerts", "secret", "nope", "--show"),
        ("alerts", "test-webhook", "http://127.0.0.1:9/x", "--model", "nope"),
        *[
            ("models", cmd, "nope")
            for cmd in ("show", "activate", "deactivate", "resume", "compare", "versions", "delete")
        ],
        ("models", "set", "nope", "alert_threshold=0.8"),
        ("models", "replace", "nope", bundle),
        ("models", "promote", "nope", "1"),
        ("models", "export", "nope"),
        ("models", "rename", "nope", "new"),
    ]
    wrong_file = [
        ("replay", missing),
        ("backtest", missing),
        ("demo", "--data", missing),
        ("train", "--name", "t", "--data", missing),
        ("models", "import", missing),
        ("alerts", "secret", "nope", "--from-file", missing),
        ("replay", csv),
        ("backtest", csv),
        ("demo", "--data", csv),
        ("train", "--name", "t", "--data", csv),
        ("models", "import", bundle),
    ]
    wrong_setting = [
        ("models", "set", "nope", "colour=red"), ("models", "set", "nope", "alert_threshold=2"),
        ("models", "set", "nope", "phases="), ("models", "set", "nope", "webhook_url=ftp://x"),
        ("train", "--name", "t", "--alert-threshold", "2"), ("stats", "--since", "yesterdayish"),
        ("demo", "--duration", "0"), ("simulate", "--coins", "-1"),
    ]  # fmt: skip
    for args in wrong_name + wrong_file + wrong_setting:
        line = assert_one_error_line(coinfleet(*args, env=env))
        assert len(line) > len("error: ") + 10, (args, line)
        assert args not in wrong_name or "no model named 'nope'" in line, (args, line)
