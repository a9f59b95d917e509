"""Delivery on a thread of its own: its own event loop and its own connections, beside the scoring.

A receiver's answer is stored as soon as it comes only if nothing stands between the two: on the
serving process's event loop an answer waited behind whatever the lanes were doing (features, rules,
building a batch), and its statement behind the lanes' use of the shared pool. A worker that dies in
that gap leaves the alert to be sent again. Here the deliverer runs `asyncio.run` on a thread, with a
small pool of its own, so an answer waits only for a CPU and for the interpreter lock (a thread switch
interval of 1 ms while delivery runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable

from coinfleet.alerts.delivery import Deliverer
from coinfleet.config import Settings
from coinfleet.db.database import create_pool

#: the delivery pool's commits do not wait for the WAL flush (3–8 ms at the median on a busy VM, the
#: window's biggest part after the CPU): an answer is stored sooner, so a worker's death leaves fewer
#: alerts to be sent twice; a server crash (not a restart) may lose the last fraction of a second of
#: outcomes and claims, whose alerts are then sent again too. Delivery is at least once either way, and
#: the lanes' own commits (their outbox rows) take the same risk (Settings.lane_synchronous_commit).
DELIVERY_SERVER_SETTINGS = {"synchronous_commit": "off"}
#: the interpreter's thread switch interval while delivery runs: how long the delivery thread, woken by
#: an answer, waits at most for a thread that computes; the default (5 ms) is paid at every socket call
SWITCH_INTERVAL_SECONDS = 0.001


class DeliveryThread:
    """Runs a `Deliverer` on its own thread, event loop and pool; `run` and `stop` from the caller's loop."""

    def __init__(self, *, dsn: str, settings: Settings) -> None:
        self._dsn = dsn
        self._settings = settings
        self._lock = threading.Lock()
        self._stopping = False
        self._stop_inside: Callable[[], None] | None = None  #: asks the deliverer to stop, from any thread

    def stop(self) -> None:
        """Ask the deliverer to finish the attempts in flight and return (from any thread)."""
        with self._lock:
            self._stopping = True
            stop_inside = self._stop_inside
        if stop_inside is not None:
            stop_inside()

    async def run(self) -> None:
        """Deliver on the thread until stopped; raises what the deliverer raised."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def main() -> None:
            error: Exception | None = RuntimeError("the delivery thread ended abruptly")
            try:
                asyncio.run(self._deliver())
                error = None
            except Exception as exc:  # handed to the caller's loop, raised there
                error = exc
            finally:
                _call_soon(loop, lambda: _finish(done, error))

        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL_SECONDS))
        threading.Thread(target=main, name="coinfleet-delivery", daemon=True).start()
        try:
            await asyncio.shield(done)
        finally:
            self.stop()  # cancelled: the thread stops too (it is a daemon: it never holds up an exit)
            sys.setswitchinterval(switch_interval)

    async def _deliver(self) -> None:
        pool = await create_pool(
            self._dsn,
            max_size=self._settings.webhook_connections,
            probe=False,
            server_settings=DELIVERY_SERVER_SETTINGS,
        )
        try:
            deliverer = Deliverer(pool=pool, dsn=self._dsn, settings=self._settings)
            loop = asyncio.get_running_loop()
            with self._lock:
                self._stop_inside = lambda: _call_soon(loop, deliverer.stop)
                stopping = self._stopping
            if stopping:
                deliverer.stop()
            await deliverer.run()
        finally:
            with self._lock:
                self._stop_inside = None
            await pool.close()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has ended already
        loop.call_soon_threadsafe(callback)


def _finish(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
