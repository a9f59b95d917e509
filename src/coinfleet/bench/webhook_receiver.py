"""A webhook receiver for `coinfleet bench alerts`, run in its own process so it never competes with the
deliverer's event loop: answers every POST with 200 after a fixed delay, keep-alive, and tells what it
received (`GET /received`: idempotency keys in arrival order and the connections they came on).

    python -m coinfleet.bench.webhook_receiver PORT DELAY_MS
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Log:
    """What arrived, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.connections: set[tuple[str, int]] = set()


def handler(log: Log, delay_seconds: float) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `log`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as Node (n8n) and uvicorn do: no 40 ms delayed-ACK stalls

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with log.lock:
                log.keys.append(self.headers.get("Idempotency-Key", ""))
                log.connections.add(self.client_address)
            time.sleep(delay_seconds)
            self._answer(b'{"ok": true}')

        def do_GET(self) -> None:
            with log.lock:
                data = {"keys": list(log.keys), "connections": len(log.connections)}
            self._answer(json.dumps(data).encode())

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(port: int, delay_ms: float) -> None:
    """Serve until killed; print one line when listening."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(Log(), delay_ms / 1000))
    server.daemon_threads = True
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
