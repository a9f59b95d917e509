"""A runner per model in a child process of its own: loaded once, fed micro-batches, killed on trouble.

Children are forked by multiprocessing's fork server, a small process that has imported this module,
numpy and onnxruntime once: a start or a restart after a crash costs a fork, not a new interpreter
importing everything again on the cores the other models need (forking the serving process itself is
unsafe: it has an event loop and threads). The child imports the library of its model's format itself.
One pipe carries every batch: the parent sends the shape and the float32 bytes, the child answers the
CPU seconds it spent and the float64 probabilities, or the error. The parent waits on the pipe with
`loop.add_reader`, never blocking its event loop, and polls the child's resident memory while it waits.
A crash, a batch past its timeout or memory past its limit kills only this child; the next batch
starts a new one, so the lane's retry backoff paces the restarts. The child's side is child.py; given
a HogPolicy (hogs.py), the runner reports each batch's CPU to it, and a child that hogs a core yields
to quick lanes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import spawn
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import numpy as np
import structlog
from prometheus_client import Counter

from coinfleet.runners.child import OK, PAGE_BYTES, READY, LoaderSpec, child_main
from coinfleet.runners.hogs import HogPolicy
from coinfleet.runners.protocol import CRASH, LOAD, MEMORY, TIMEOUT, RunnerError

log = structlog.get_logger(__name__)
#: served by /metrics with the lanes' metrics (lanes.telemetry)
RESTARTS = Counter("coinfleet_runner_restarts", "Runner processes started again after a failure", ["model"])
#: seconds between checks of a busy child's resident memory
MEMORY_POLL_SECONDS = 0.02
#: what the fork server imports once, so that a child starts warm (fork_main: the parent's main script)
FORK_SERVER_PRELOAD = ["coinfleet.runners.fork_main", "coinfleet.runners.process", "onnxruntime"]
#: where the parent's main script is, for the fork server (fork_main); set before the server starts
MAIN_PATH_ENV = "COINFLEET_FORK_SERVER_MAIN"
#: seconds a child may take to import its libraries and load its model
START_TIMEOUT_SECONDS = 60.0
#: seconds a closing child gets to leave on its own before it is killed
CLOSE_GRACE_SECONDS = 2.0
_MAX_INT32 = 0x7FFFFFFF


@dataclass(frozen=True, kw_only=True)
class RunnerLimits:
    """What one batch may take before its child is killed."""

    timeout_seconds: float
    memory_limit_mb: int


#: starts counting the seconds a child stands still for quick lanes (HogPolicy.stood_still)
_Watch = Callable[[], Callable[[], float]]


@dataclass(kw_only=True)
class _Child:
    """A running child, as the parent sees it: its process, its end of the pipe, its memory."""

    process: BaseProcess
    conn: Connection
    memory_checked_at: float = float("-inf")  #: event-loop time of the last look at its memory
    statm: int | None = None  #: its /proc statm, open for the whole life of the child
    #: the parent's end of the pipe as a non-blocking socket: every read and write goes through the event
    #: loop, since one that waits (a batch larger than the socket's buffer, for a child the hog policy
    #: has stopped) must not block the loop, whose timer lets the child go on
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(fileno=os.dup(self.conn.fileno()))
        self.sock.setblocking(False)
        # one pread per look instead of open, read and close (a tenth of the cost)
        with contextlib.suppress(OSError):
            self.statm = os.open(f"/proc/{self.process.pid}/statm", os.O_RDONLY)

    def resident_mb(self) -> float:
        """Its resident memory in MB (0 when it is gone)."""
        if self.statm is None:
            return 0.0
        try:
            return int(os.pread(self.statm, 128, 0).split()[1]) * PAGE_BYTES / 2**20
        except (OSError, IndexError, ValueError):
            return 0.0

    def forget(self) -> None:
        """Close what the parent holds of it."""
        self.sock.close()
        self.conn.close()
        if self.statm is not None:
            os.close(self.statm)
            self.statm = None

    async def exchange(
        self, features: np.ndarray, limits: RunnerLimits, watch: _Watch, on_answer: Callable[[], None] | None
    ) -> tuple[np.ndarray, float]:
        """The probabilities, and the CPU seconds the child spent on them."""
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim != 2:
            raise ValueError(f"features must be a 2-D array, got shape {rows.shape}")
        frame = _frame(np.array(rows.shape, dtype=np.int64).tobytes() + rows.tobytes())
        try:
            sent = self.sock.send(frame)  # a batch that fits the socket's buffer goes at once
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise RunnerError(CRASH, f"runner process is gone ({exc})") from exc
        sending = None
        if sent < len(frame):  # the rest as the child reads it, while the batch's deadline runs
            loop = asyncio.get_running_loop()
            sending = loop.create_task(loop.sock_sendall(self.sock, memoryview(frame)[sent:]))
            sending.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            reply = await self.receive(limits.timeout_seconds, limits, watch, on_answer)
        finally:
            if sending is not None:
                sending.cancel()  # done by now unless the child failed
        if reply[:1] == OK:
            values = np.frombuffer(reply, dtype=np.float64, offset=1)
            return values[1:].copy(), float(values[0])
        kind, message = _error_parts(reply)
        raise RunnerError(MEMORY if kind == "MemoryError" else kind, message)

    async def receive(
        self,
        timeout: float,
        limits: RunnerLimits,
        watch: _Watch,
        on_answer: Callable[[], None] | None = None,
    ) -> bytes:
        """The child's next message; RunnerError when it dies, or passes the deadline or its memory limit
        first."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.sock.fileno()
        loop.add_reader(fd, _set_ready, ready, on_answer)
        try:
            await self._watch(ready, timeout, limits, watch())
        finally:
            loop.remove_reader(fd)
        try:
            # readable means the child answered (or died); a large answer may still come in parts
            return await _read_message(self.sock)
        except (EOFError, OSError) as exc:
            await asyncio.to_thread(self.process.join, CLOSE_GRACE_SECONDS)
            raise RunnerError(CRASH, f"runner process died (exit code {self.process.exitcode})") from exc

    async def _watch(
        self,
        ready: asyncio.Future[None],
        timeout: float,
        limits: RunnerLimits,
        stood_still: Callable[[], float],
    ) -> None:
        """Until `ready`; a timer checks the deadline and the child's memory meanwhile and fails `ready`
        when either is past (the answer wakes this coroutine directly, with no task in between)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        timer: asyncio.TimerHandle

        def check() -> None:
            nonlocal timer
            if ready.done():
                return
            # time a hog spent stopped for quick lanes is not the model's: it moves the deadline
            remaining = deadline + stood_still() - loop.time()
            try:
                self._check_memory(limits)
                if remaining <= 0:
                    raise RunnerError(TIMEOUT, f"batch took longer than {limits.timeout_seconds:g} s")
            except RunnerError as exc:
                ready.set_exception(exc)
                return
            timer = loop.call_later(min(remaining, MEMORY_POLL_SECONDS), check)

        timer = loop.call_later(min(timeout, MEMORY_POLL_SECONDS), check)
        try:
            await ready
        finally:
            timer.cancel()
        if loop.time() - self.memory_checked_at >= MEMORY_POLL_SECONDS:
            self._check_memory(limits)  # quick answers in a row: one look at /proc per poll interval

    def _check_memory(self, limits: RunnerLimits) -> None:
        used_mb = self.resident_mb()
        self.memory_checked_at = asyncio.get_running_loop().time()
        limit_mb = limits.memory_limit_mb
        if used_mb > limit_mb:
            raise RunnerError(MEMORY, f"runner used {used_mb:.0f} MB, over its limit of {limit_mb} MB")


class ProcessRunner:
    """Scores batches in a child process; restarts it after a crash, a timeout or too much memory."""

    def __init__(
        self, spec: LoaderSpec, *, name: str, limits: RunnerLimits, hogs: HogPolicy | None = None
    ) -> None:
        self.name = name
        self._hogs = hogs
        self.starts = 0  #: children started so far (restarts = starts - 1)
        self._spec = spec
        self._limits = limits
        self._child: _Child | None = None
        self._lock = asyncio.Lock()
        self._cpu_per_row: float | None = None  #: of the last batch answered

    def expected_cpu_seconds(self, rows: int) -> float | None:
        """CPU seconds a batch of `rows` will likely take, at the last batch's cost per row."""
        return None if self._cpu_per_row is None else self._cpu_per_row * rows

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return None if self._child is None else self._child.process.pid

    def set_limits(self, limits: RunnerLimits) -> None:
        """New limits apply from the next batch (the child's address-space cap from its next start)."""
        self._limits = limits

    async def start(self) -> None:
        """Start the child now, so a model that cannot load fails here (RunnerError)."""
        async with self._lock:
            if self._child is None:
                await self._start()

    async def predict(
        self, features: np.ndarray, *, on_answer: Callable[[], None] | None = None
    ) -> np.ndarray:
        """P(class 1) per row; RunnerError with reason crash / timeout / memory / the model's error type.
        `on_answer` is called the moment the child's answer is readable."""
        async with self._lock:
            if self._child is None:
                await self._start()
            assert self._child is not None
            try:
                answer, cpu_seconds = await self._child.exchange(
                    features, self._limits, self._stood_still, on_answer
                )
                self._cpu_per_row = cpu_seconds / max(1, len(features))
                if self._hogs is not None and self._child.process.pid is not None:
                    self._hogs.answered(self, self._child.process.pid, cpu_seconds, len(features))
                return answer
            except RunnerError as exc:
                if exc.reason in (CRASH, TIMEOUT, MEMORY):
                    await self._kill(exc.reason)
                raise

    async def close(self) -> None:
        """Let the child leave, killing it if it does not."""
        async with self._lock:
            child, self._child = self._child, None
        if child is not None:
            self._release(child)
            child.forget()
            await asyncio.to_thread(child.process.join, CLOSE_GRACE_SECONDS)
            if child.process.is_alive():
                child.process.kill()
                await asyncio.to_thread(child.process.join)

    async def _start(self) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORK_SERVER_PRELOAD)  # takes effect when the server starts
        _tell_fork_server_main()
        parent_conn, child_conn = context.Pipe(duplex=True)
        process = context.Process(
            target=child_main,
            args=(
                child_conn,
                self._spec,
                self._limits.memory_limit_mb,
                self._hogs is not None and self._hogs.start_hogging,
            ),
            name=f"coinfleet-runner:{self.name}",
            daemon=True,
        )
        # start() writes the pickled spec (the model file) into the child's pipe: off the event loop
        await asyncio.to_thread(process.start)
        child_conn.close()
        self._child = _Child(process=process, conn=parent_conn)
        if self._hogs is not None and process.pid is not None:
            self._hogs.started(self, process.pid)
        self.starts += 1
        if self.starts > 1:
            RESTARTS.labels(self.name).inc()
        try:
            reply = await self._child.receive(START_TIMEOUT_SECONDS, self._limits, self._stood_still)
        except RunnerError as exc:
            await self._kill(exc.reason)
            raise RunnerError(
                LOAD if exc.reason == CRASH else exc.reason, f"runner did not start: {exc}"
            ) from exc
        if reply[:1] != READY:
            await self._kill(LOAD)
            raise RunnerError(LOAD, f"cannot load model {self.name!r}: {_error_text(reply)}")
        log.info("runner_started", model=self.name, pid=process.pid, starts=self.starts)

    def _stood_still(self) -> Callable[[], float]:
        """From now on, the seconds the child stands still for quick lanes (see HogPolicy.stood_still)."""
        return _never if self._hogs is None else self._hogs.stood_still(self)

    def _release(self, child: _Child) -> None:
        """A leaving child must not stay stopped."""
        if self._hogs is not None:
            self._hogs.left(self, child.process.pid)

    async def _kill(self, reason: str) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        self._release(child)
        child.process.kill()
        child.forget()
        await asyncio.to_thread(child.process.join)
        log.warning("runner_killed", model=self.name, reason=reason, pid=child.process.pid)


def _tell_fork_server_main() -> None:
    """Where the parent's main script is, for the fork server to import it once (see fork_main)."""
    main_path = spawn.get_preparation_data("coinfleet-runner").get("init_main_from_path")
    if main_path is None:
        os.environ.pop(MAIN_PATH_ENV, None)  # inherited from a parent of this process: not ours
    elif os.environ.get(MAIN_PATH_ENV) != main_path:  # the environment changes once, not per start
        os.environ[MAIN_PATH_ENV] = main_path


def _never() -> float:
    return 0.0


def _frame(message: bytes) -> bytes:
    """A message in the framing of multiprocessing's Connection, which the child reads with."""
    size = len(message)
    header = struct.pack("!i", size) if size <= _MAX_INT32 else struct.pack("!iQ", -1, size)
    return header + message


async def _read_message(sock: socket.socket) -> bytes:
    """One message the child wrote with Connection.send_bytes, read on the event loop."""
    (size,) = struct.unpack("!i", await _read_exactly(sock, 4))
    if size == -1:
        (size,) = struct.unpack("!Q", await _read_exactly(sock, 8))
    return await _read_exactly(sock, size)


async def _read_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            raise EOFError("the runner closed its end of the pipe")
        got += n
    return bytes(buffer)


def _set_ready(ready: asyncio.Future[None], on_answer: Callable[[], None] | None) -> None:
    if not ready.done():
        ready.set_result(None)
        if on_answer is not None:
            on_answer()


def _error_parts(reply: bytes) -> tuple[str, str]:
    kind, _, message = reply[1:].decode("utf-8", "replace").partition("\x00")
    return kind or "RunnerError", message


def _error_text(reply: bytes) -> str:
    kind, message = _error_parts(reply)
    return f"{kind}: {message}"
