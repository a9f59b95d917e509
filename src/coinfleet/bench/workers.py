"""`coinfleet worker` processes for benchmarks and tests: started, killed, paused and restarted on
demand, each with its log in a file; and a webhook receiver that counts deliveries per idempotency key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from coinfleet.alerts.payload import IDEMPOTENCY_HEADER

STOP_SECONDS = 20.0  #: a worker asked to stop (SIGTERM) is killed after this long


class WorkerProcesses:
    """`python -m coinfleet worker` processes sharing one environment, by index."""

    def __init__(self, count: int, env: Mapping[str, str], logs: Path) -> None:
        self._env = {**os.environ, **env}
        self._logs = logs
        self._procs: list[subprocess.Popen[bytes]] = []
        self.starts = [0] * count  #: how often each was started
        logs.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            self._procs.append(self._spawn(index))

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        self.starts[index] += 1
        log = (self._logs / f"worker{index}.log").open("ab")
        with log:
            return subprocess.Popen(
                [sys.executable, "-m", "coinfleet", "worker"], env=self._env, stdout=log, stderr=log
            )

    def __len__(self) -> int:
        return len(self._procs)

    def pid(self, index: int) -> int:
        """The process id of worker `index`."""
        return self._procs[index].pid

    def kill(self, index: int) -> None:
        """SIGKILL worker `index` and wait for it to die (no chance to release anything)."""
        self._procs[index].kill()
        self._procs[index].wait()

    def restart(self, index: int) -> None:
        """Start worker `index` again (after it was killed or exited)."""
        self._procs[index] = self._spawn(index)

    def pause(self, index: int) -> None:
        """SIGSTOP worker `index`: it stands still, its heartbeats with it."""
        os.kill(self._procs[index].pid, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        """SIGCONT worker `index`."""
        os.kill(self._procs[index].pid, signal.SIGCONT)

    def restart_exited(self) -> dict[int, int]:
        """Start again the workers that exited on their own; return their exit codes by index."""
        exited = {i: code for i, p in enumerate(self._procs) if (code := p.poll()) is not None}
        for index in exited:
            self.restart(index)
        return exited

    def stop(self) -> list[int | None]:
        """SIGTERM every worker, wait (SIGKILL after STOP_SECONDS); return their exit codes."""
        for proc in self._procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        codes: list[int | None] = []
        for proc in self._procs:
            try:
                codes.append(proc.wait(STOP_SECONDS))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def log_count(self, event: str) -> int:
        """How many log lines of all workers name `event`."""
        return sum(
            path.read_text("utf-8", errors="replace").count(event) for path in self._logs.glob("worker*.log")
        )


class WebhookReceiver:
    """A real HTTP server on loopback (in a thread) that answers 200 and counts idempotency keys."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)  #: key → time.time() of each
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get(IDEMPOTENCY_HEADER, "")
                with receiver._lock:
                    receiver.keys[key] += 1
                    receiver.arrivals[key].append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhook"

    def counts(self) -> Counter[str]:
        """Deliveries so far per idempotency key."""
        with self._lock:
            return Counter(self.keys)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
