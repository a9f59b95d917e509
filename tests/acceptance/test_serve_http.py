"""`coinfleet serve` and `coinfleet api` serve HTTP beside (or without) the lanes, and stop on SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from coinfleet.db.priority import OPERATOR_NICENESS

pytestmark = pytest.mark.slow
URL = re.compile(r"API docs: (http://\S+)/api/docs")


@contextmanager
def coinfleet(command: str, db_dsn: str, home: Path) -> Iterator[tuple[str, str, int]]:
    """Run `coinfleet COMMAND` on a free port; yield its base URL, the token it printed and its pid."""
    env = {**os.environ, "DATABASE_URL": db_dsn, "COINFLEET_HOME": str(home), "COINFLEET_API_PORT": "0",
           "COINFLEET_RUNNER": "inline", "COINFLEET_LOG_LEVEL": "warning"}  # fmt: skip
    env.pop("COINFLEET_API_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "coinfleet", command], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    try:
        seen = [process.stderr.readline() for _ in range(2)]
        token = seen[0].rsplit(": ", 1)[1].strip()
        match = URL.search(seen[1])
        assert match, seen
        yield match[1], token, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        process.stderr.close()


@pytest.mark.parametrize("command", ["serve", "api"])
async def test_the_http_side_answers_while_it_runs(command: str, db_dsn: str, tmp_path: Path) -> None:
    await asyncio.to_thread(check_http_side, command, db_dsn, tmp_path)


def check_http_side(command: str, db_dsn: str, tmp_path: Path) -> None:
    """Start the command, ask /ready and /metrics, stop it."""
    with coinfleet(command, db_dsn, tmp_path / "home") as (base, token, pid):
        assert (tmp_path / "home" / "api-token").read_text().strip() == token
        ready = httpx.get(f"{base}/ready", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["lanes"] == ("started" if command == "serve" else "not_served_here")
        assert httpx.get(f"{base}/api/models", timeout=10).json() == []
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200
        # serve: the HTTP process serves the serving process's registry, where the lanes count
        assert ("coinfleet_lanes_started 1.0" in metrics.text) is (command == "serve")
        assert httpx.post(f"{base}/api/models/x/activate", timeout=10).status_code == 401
        if command == "api":  # the HTTP side alone: at operator priority all the same
            assert os.getpriority(os.PRIO_PROCESS, pid) == OPERATOR_NICENESS
        if command == "serve":  # the HTTP side and its manual scoring run below the lanes and runners
            assert os.getpriority(os.PRIO_PROCESS, pid) == 0
            named = _descendants(pid)
            for _ in range(300):  # the scoring child names itself once its imports are done
                if set(named) >= {"coinfleet-http", "coinfleet-score"}:
                    break
                time.sleep(0.1)
                named = _descendants(pid)
            assert set(named) >= {"coinfleet-http", "coinfleet-score"}, named
            for name in ("coinfleet-http", "coinfleet-score"):
                assert os.getpriority(os.PRIO_PROCESS, named[name]) == OPERATOR_NICENESS, name


def _descendants(root: int) -> dict[str, int]:
    """Name → pid of the processes under `root` (Linux's /proc)."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            text = (entry / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            parents[int(entry.name)] = (int(text[text.rindex(")") + 2 :].split()[1]), name)
    found: dict[str, int] = {}
    for pid, (_, name) in parents.items():
        ancestor = pid
        while ancestor in parents and ancestor != root:
            ancestor = parents[ancestor][0]
        if ancestor == root and pid != root:
            found[name] = pid
    return found
