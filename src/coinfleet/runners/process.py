"""A runner per model in a child process of its own: loaded once, fed micro-batches, killed on trouble.

Children are forked by multiprocessing's fork server, a small process that has imported this module,
numpy and onnxruntime once: a start or a restart after a crash costs a fork, not a new interpreter
importing everything again on the cores the other models need (forking the serving process itself is
unsafe: it has an event loop and threads). The child imports the library of its model's format itself.
One pipe carries every batch: the parent sends the shape and the float32 bytes, the child answers the
CPU seconds it spent and the float64 probabilities, or the error. The parent waits on the pipe with
`loop.add_reader`, never blocking its event loop, and polls the child's resident memory while it waits.
A crash, a batch past its timeout or memory past its limit kills only this child; the next batch
starts a new one, so the lane's retry backoff paces the restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import multiprocessing
import os
import resource
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import spawn
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import structlog
from prometheus_client import Counter

from coinfleet.models.formats import Predictor, load_predictor
from coinfleet.runners.hogs import HogGate
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
#: first byte of each message from the child
_READY, _OK, _ERROR = b"R", b"P", b"E"
CHILD_NICENESS = 10  #: runner children run at this nice level above the parent
HOG_NICENESS = 19  #: ... and at this one, as SCHED_IDLE, after a batch of more than HOG_BATCH_SECONDS CPU
HOG_BATCH_SECONDS = 0.025
#: ... and of more than this per row: a cheap model's large batch (a backlog, a burst) is not hogging
HOG_ROW_SECONDS = 0.001
#: children load at the lowest priority and rise after a quick batch; only a privileged parent can
#: raise a child again, so an unprivileged one starts them at CHILD_NICENESS and demotes for good
START_HOGGING = os.geteuid() == 0
PR_SET_PDEATHSIG = 1  #: prctl option (linux/prctl.h)
_HEADER_BYTES = 16  #: two int64: rows, columns
_MAX_INT32 = 0x7FFFFFFF
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, kw_only=True)
class LoaderSpec:
    """How the child builds its predictor: `module:function` called with `args`, `sys_path` added first."""

    function: str
    args: tuple[Any, ...] = ()
    sys_path: tuple[str, ...] = ()

    @classmethod
    def for_artifact(cls, fmt: str, artifact: bytes) -> LoaderSpec:
        """Load a model file the ordinary way (formats.load_predictor)."""
        return cls(function=f"{__name__}:load_artifact", args=(fmt, artifact))


@dataclass(frozen=True, kw_only=True)
class RunnerLimits:
    """What one batch may take before its child is killed."""

    timeout_seconds: float
    memory_limit_mb: int


def load_artifact(fmt: str, artifact: bytes) -> Predictor:
    """The default loader, run in the child."""
    return load_predictor(fmt, artifact)


@dataclass(kw_only=True)
class _Child:
    process: BaseProcess
    conn: Connection
    hogging: bool = START_HOGGING  #: at the lowest CPU priority (see `_cpu_class`)
    memory_checked_at: float = float("-inf")  #: event-loop time of the last look at its memory
    statm: int | None = None  #: its /proc statm, open for the whole life of the child
    #: the parent's end of the pipe as a non-blocking socket: every read and write goes through the event
    #: loop, since one that waits (a batch larger than the socket's buffer, for a child the HogGate has
    #: stopped) must not block the loop, whose timer lets the child go on
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
            return int(os.pread(self.statm, 128, 0).split()[1]) * _PAGE_BYTES / 2**20
        except (OSError, IndexError, ValueError):
            return 0.0

    def forget(self) -> None:
        """Close what the parent holds of it."""
        self.sock.close()
        self.conn.close()
        if self.statm is not None:
            os.close(self.statm)
            self.statm = None


class ProcessRunner:
    """Scores batches in a child process; restarts it after a crash, a timeout or too much memory."""

    def __init__(
        self, spec: LoaderSpec, *, name: str, limits: RunnerLimits, hogs: HogGate | None = None
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
    def hogging(self) -> bool:
        """Whether the child's last batch hogged a core (it then yields to quick lanes)."""
        return self._child is not None and self._child.hogging

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
                answer, cpu_seconds = await self._exchange(self._child, features, on_answer)
                self._cpu_per_row = cpu_seconds / max(1, len(features))
                self._demote_if_hogging(self._child, cpu_seconds, len(features))
                return answer
            except RunnerError as exc:
                if exc.reason in (CRASH, TIMEOUT, MEMORY):
                    await self._kill(exc.reason)
                raise

    def _demote_if_hogging(self, child: _Child, cpu_seconds: float, rows: int) -> None:
        """After a batch that burned more than HOG_BATCH_SECONDS of CPU, and more than HOG_ROW_SECONDS per
        row, the child runs at the lowest CPU priority and yields to quick lanes (HogGate), until its
        batches are cheap again.

        CPU time, not wall time: a model slowed down by a busy machine is not a hog. Per row too: under
        load every lane's batches grow, and a cheap model's 2000-row batch is not a slow model (stopping
        it made it fall further behind, its batches grow further).
        """
        hogging = cpu_seconds > max(HOG_BATCH_SECONDS, HOG_ROW_SECONDS * rows)
        pid = child.process.pid
        if child.hogging != hogging and pid is not None:
            with contextlib.suppress(OSError):  # the child may have just left
                _cpu_class(pid, hogging=hogging)
                child.hogging = hogging
            if self._hogs is not None:
                if hogging:
                    self._hogs.add(pid)
                else:
                    self._hogs.discard(pid)

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
            target=_child_main,
            args=(child_conn, self._spec, self._limits.memory_limit_mb),
            name=f"coinfleet-runner:{self.name}",
            daemon=True,
        )
        # start() writes the pickled spec (the model file) into the child's pipe: off the event loop
        await asyncio.to_thread(process.start)
        child_conn.close()
        self._child = _Child(process=process, conn=parent_conn)
        if self._child.hogging and self._hogs is not None and process.pid is not None:
            # a child loads at the lowest priority (START_HOGGING) and yields to quick lanes like any hog;
            # a hog from its first batch on is never announced by a change of class, so it is here
            self._hogs.add(process.pid)
        self.starts += 1
        if self.starts > 1:
            RESTARTS.labels(self.name).inc()
        try:
            reply = await self._receive(self._child, START_TIMEOUT_SECONDS)
        except RunnerError as exc:
            await self._kill(exc.reason)
            raise RunnerError(
                LOAD if exc.reason == CRASH else exc.reason, f"runner did not start: {exc}"
            ) from exc
        if reply[:1] != _READY:
            await self._kill(LOAD)
            raise RunnerError(LOAD, f"cannot load model {self.name!r}: {_error_text(reply)}")
        log.info("runner_started", model=self.name, pid=process.pid, starts=self.starts)

    async def _exchange(
        self, child: _Child, features: np.ndarray, on_answer: Callable[[], None] | None
    ) -> tuple[np.ndarray, float]:
        """The probabilities, and the CPU seconds the child spent on them."""
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim != 2:
            raise ValueError(f"features must be a 2-D array, got shape {rows.shape}")
        frame = _frame(np.array(rows.shape, dtype=np.int64).tobytes() + rows.tobytes())
        try:
            sent = child.sock.send(frame)  # a batch that fits the socket's buffer goes at once
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise RunnerError(CRASH, f"runner process is gone ({exc})") from exc
        sending = None
        if sent < len(frame):  # the rest as the child reads it, while the batch's deadline runs
            loop = asyncio.get_running_loop()
            sending = loop.create_task(loop.sock_sendall(child.sock, memoryview(frame)[sent:]))
            sending.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            reply = await self._receive(child, self._limits.timeout_seconds, on_answer)
        finally:
            if sending is not None:
                sending.cancel()  # done by now unless the child failed
        if reply[:1] == _OK:
            values = np.frombuffer(reply, dtype=np.float64, offset=1)
            return values[1:].copy(), float(values[0])
        kind, message = _error_parts(reply)
        raise RunnerError(MEMORY if kind == "MemoryError" else kind, message)

    async def _receive(
        self, child: _Child, timeout: float, on_answer: Callable[[], None] | None = None
    ) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = child.sock.fileno()
        loop.add_reader(fd, _set_ready, ready, on_answer)
        try:
            await self._watch(child, ready, timeout)
        finally:
            loop.remove_reader(fd)
        try:
            # readable means the child answered (or died); a large answer may still come in parts
            return await _read_message(child.sock)
        except (EOFError, OSError) as exc:
            await asyncio.to_thread(child.process.join, CLOSE_GRACE_SECONDS)
            raise RunnerError(CRASH, f"runner process died (exit code {child.process.exitcode})") from exc

    async def _watch(self, child: _Child, ready: asyncio.Future[None], timeout: float) -> None:
        """Until `ready`; a timer checks the deadline and the child's memory meanwhile and fails `ready`
        when either is past (the answer wakes this coroutine directly, with no task in between)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stoppable = child.hogging
        stopped_at_start = self._stopped_seconds()
        timer: asyncio.TimerHandle

        def check() -> None:
            nonlocal timer
            if ready.done():
                return
            # time a hog spent stopped for quick lanes is not the model's: it moves the deadline
            stopped = self._stopped_seconds() - stopped_at_start if stoppable else 0.0
            remaining = deadline + stopped - loop.time()
            try:
                self._check_memory(child)
                if remaining <= 0:
                    raise RunnerError(TIMEOUT, f"batch took longer than {self._limits.timeout_seconds:g} s")
            except RunnerError as exc:
                ready.set_exception(exc)
                return
            timer = loop.call_later(min(remaining, MEMORY_POLL_SECONDS), check)

        timer = loop.call_later(min(timeout, MEMORY_POLL_SECONDS), check)
        try:
            await ready
        finally:
            timer.cancel()
        if loop.time() - child.memory_checked_at >= MEMORY_POLL_SECONDS:
            self._check_memory(child)  # quick answers in a row: one look at /proc per poll interval

    def _check_memory(self, child: _Child) -> None:
        used_mb = child.resident_mb()
        child.memory_checked_at = asyncio.get_running_loop().time()
        limit_mb = self._limits.memory_limit_mb
        if used_mb > limit_mb:
            raise RunnerError(MEMORY, f"runner used {used_mb:.0f} MB, over its limit of {limit_mb} MB")

    def _stopped_seconds(self) -> float:
        return 0.0 if self._hogs is None else self._hogs.stopped_seconds()

    def _release(self, child: _Child) -> None:
        """A leaving child must not stay stopped."""
        if self._hogs is not None and child.process.pid is not None:
            self._hogs.discard(child.process.pid)

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


def _cpu_class(pid: int, *, hogging: bool) -> None:
    """A hogging child is SCHED_IDLE: any waking process of normal priority preempts it at once (nice 19
    alone still let it finish its time slice first); otherwise it runs at nice CHILD_NICENESS."""
    if hogging:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, pid, HOG_NICENESS)
    else:
        os.setpriority(os.PRIO_PROCESS, pid, CHILD_NICENESS)  # first: leaving SCHED_IDLE checks it
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))


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


# --- the child ---


def _child_main(conn: Connection, spec: LoaderSpec, memory_limit_mb: int) -> None:
    """Load the model once, then answer batches until the parent closes the pipe."""
    # a model's compute yields to the coordinating process and the database, which serve every model;
    # loading (imports, a restart after a crash) runs at the lowest priority until a first quick batch
    die_with_parent()
    # Ctrl-C reaches the whole process group; the parent stops its children (pipe closed, or killed)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a model that crashes until it is quarantined must not write a core file of its whole process each
    # time (hundreds of MB into the working folder where core dumps are on)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if START_HOGGING:
        _cpu_class(0, hogging=True)
    else:
        os.nice(CHILD_NICENESS)
    try:
        predictor = _resolve(spec)(*spec.args)
    except Exception as exc:  # report any load failure to the parent, which decides
        conn.send_bytes(_describe(exc))
        return
    _cap_address_space(memory_limit_mb)
    conn.send_bytes(_READY)
    while True:
        try:
            request = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(_answer(predictor, request))


def die_with_parent() -> None:
    """Get SIGKILL when the parent dies: a runner child the HogGate stopped (its parent is the fork
    server, which leaves with the server), or the HTTP child, would otherwise outlive a server killed
    with SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):  # Linux only; elsewhere the pipe's EOF must do
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _resolve(spec: LoaderSpec) -> Callable[..., Predictor]:
    sys.path[:0] = [path for path in spec.sys_path if path not in sys.path]
    module, _, function = spec.function.partition(":")
    loader: Callable[..., Predictor] = getattr(importlib.import_module(module), function)
    return loader


def _answer(predictor: Predictor, request: bytes) -> bytes:
    try:
        rows, columns = (int(n) for n in np.frombuffer(request, dtype=np.int64, count=2))
        features = np.frombuffer(request, dtype=np.float32, offset=_HEADER_BYTES).reshape(rows, columns)
        # predictors take float64 (they would convert anyway); the values stay the float32 ones sent
        started = time.process_time()
        probabilities = np.ascontiguousarray(
            predictor.predict_proba(features.astype(np.float64)), dtype=np.float64
        )
        cpu_seconds = np.array([time.process_time() - started], dtype=np.float64)
        return _OK + cpu_seconds.tobytes() + probabilities.tobytes()
    except Exception as exc:  # the model's own error goes back to the lane, which counts it
        return _describe(exc)


def _describe(exc: BaseException) -> bytes:
    return _ERROR + f"{type(exc).__name__}\x00{exc}".encode("utf-8", "replace")


def _cap_address_space(memory_limit_mb: int) -> None:
    """A hard stop behind the parent's memory watch: allocations past it raise MemoryError."""
    # mapped-but-unused memory (libraries, arenas) counts here, so the cap sits above what is mapped now
    with open("/proc/self/statm", "rb") as statm:
        mapped = int(statm.read().split()[0]) * _PAGE_BYTES
    cap = mapped + 2 * memory_limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
