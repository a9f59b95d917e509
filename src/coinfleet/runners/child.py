"""The child side of a process runner: load the model once, then answer batches until the pipe closes.

The parent (process.py) sends each batch as two int64 (rows, columns) and the float32 features; the
child answers READY once loaded, then per batch OK + the CPU seconds it spent + the float64
probabilities, or ERROR + the exception's type and message.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from coinfleet.models.formats import Predictor, load_predictor
from coinfleet.runners.hogs import child_priority

#: first byte of each message from the child
READY, OK, ERROR = b"R", b"P", b"E"
PR_SET_PDEATHSIG = 1  #: prctl option (linux/prctl.h)
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_HEADER_BYTES = 16  #: two int64: rows, columns


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


def load_artifact(fmt: str, artifact: bytes) -> Predictor:
    """The default loader, run in the child."""
    return load_predictor(fmt, artifact)


def child_main(conn: Connection, spec: LoaderSpec, memory_limit_mb: int, start_hogging: bool) -> None:
    """Load the model once, then answer batches until the parent closes the pipe."""
    die_with_parent()
    # Ctrl-C reaches the whole process group; the parent stops its children (pipe closed, or killed)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a model that crashes until it is quarantined must not write a core file of its whole process each
    # time (hundreds of MB into the working folder where core dumps are on)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    child_priority(start_hogging)
    try:
        predictor = _resolve(spec)(*spec.args)
    except Exception as exc:  # report any load failure to the parent, which decides
        conn.send_bytes(_describe(exc))
        return
    _cap_address_space(memory_limit_mb)
    conn.send_bytes(READY)
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
        return OK + cpu_seconds.tobytes() + probabilities.tobytes()
    except Exception as exc:  # the model's own error goes back to the lane, which counts it
        return _describe(exc)


def _describe(exc: BaseException) -> bytes:
    return ERROR + f"{type(exc).__name__}\x00{exc}".encode("utf-8", "replace")


def _cap_address_space(memory_limit_mb: int) -> None:
    """A hard stop behind the parent's memory watch: allocations past it raise MemoryError."""
    # mapped-but-unused memory (libraries, arenas) counts here, so the cap sits above what is mapped now
    with open("/proc/self/statm", "rb") as statm:
        mapped = int(statm.read().split()[0]) * PAGE_BYTES
    cap = mapped + 2 * memory_limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
