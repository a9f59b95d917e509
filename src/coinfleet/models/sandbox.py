"""Work on an untrusted model file in a throwaway child process with a wall-clock timeout and a memory cap.

Loading, validating and converting a model file runs its library's native parser on bytes from
outside (and, for a trusted pickle, its code). Done in the calling process, a crafted or pathological
file could crash it, hang it or leave it holding gigabytes. Here each job runs in a fresh interpreter
(`python -m coinfleet.models.sandbox`): it imports the model libraries, caps its address space, runs
one function, answers and exits. A child past its deadline is killed; past its memory cap its
allocations fail; an answer longer than that cap is cut off and the child killed, and of what it prints
only the last lines are kept, so a child writing without end costs the parent no memory. The parent
only ever reads JSON and raw bytes from the child, never a pickle, so even a child taken over by a
crafted file cannot make the parent run code.

Wire format, both ways: 8 bytes big-endian header length, a JSON header, then a raw payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import resource
import signal
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinfleet.errors import ModelLoadError

#: libraries a job may need, imported before the memory cap (their mappings do not count against it)
PRELOAD = (
    "numpy",
    "onnxruntime",
    "sklearn.ensemble",
    "xgboost",
    "lightgbm",
    "skops.io",
    "skl2onnx",
    "joblib",
)
#: niceness of a child: conversions yield the CPU to the lanes that score
CHILD_NICENESS = 10
#: last lines of a crashed child's stderr quoted in the error (each cut to a length), from at most this
#: many last bytes kept
_STDERR_LINES = 3
_STDERR_LINE_CHARS = 300
_STDERR_TAIL_BYTES = 64 * 1024
#: bytes read from a child's pipe at a time
_CHUNK = 2**20
_LENGTH = struct.Struct(">Q")
_SRC_ROOT = str(Path(__file__).resolve().parents[2])


class SandboxError(ModelLoadError):
    """A job in the child failed: it crashed, ran past its time, needed more memory, or refused the file."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  #: crash, timeout, memory, or refused


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """What one job may take before it is refused."""

    timeout_seconds: float = 600.0
    memory_limit_mb: int = 4096


async def run_job(
    function: str, header: dict[str, Any], payload: bytes, limits: SandboxLimits, *, what: str = "model file"
) -> tuple[dict[str, Any], bytes]:
    """Run `module:function(header, payload)` in a child; its (header, payload), or SandboxError."""
    request = _pack({**header, "function": function, "memory_limit_mb": limits.memory_limit_mb}, payload)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, (_SRC_ROOT, os.environ.get("PYTHONPATH")))),
        },
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(_exchange(process, request, limits), limits.timeout_seconds)
    except TimeoutError:
        raise SandboxError(
            "timeout", f"{what} refused: loading or checking it took longer than {limits.timeout_seconds:g} s"
        ) from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if out is None:
        raise SandboxError(
            "memory",
            f"{what} refused: it answered with more than its memory limit of {limits.memory_limit_mb} MB",
        )
    return _answer(out, err, process.returncode, limits, what)


async def _exchange(
    process: asyncio.subprocess.Process, request: bytes, limits: SandboxLimits
) -> tuple[bytes | None, bytes]:
    """Send the request; the child's answer (None when it passed the memory limit: the child is killed)
    and the tail of its stderr. Neither is kept whole: a child printing without end holds no memory here."""
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    stdin = process.stdin

    async def send() -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may leave before reading all
            stdin.write(request)
            await stdin.drain()
            stdin.close()

    out, err, _ = await asyncio.gather(
        _read_answer(process, process.stdout, limits.memory_limit_mb * 2**20),
        _read_tail(process.stderr, _STDERR_TAIL_BYTES),
        send(),
    )
    await process.wait()
    return out, err


async def _read_answer(
    process: asyncio.subprocess.Process, stream: asyncio.StreamReader, limit: int
) -> bytes | None:
    """All of `stream`, or None (the child killed, the rest read to its end and dropped) once it passes
    `limit` bytes: an answer is built in the child's memory, so a sound one never does."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            while await stream.read(_CHUNK):  # to its end, so the pipe closes
                pass
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """The last `keep` bytes of `stream`, read to its end."""
    tail = bytearray()
    while chunk := await stream.read(_CHUNK):
        tail += chunk
        del tail[:-keep]
    return bytes(tail)


def _answer(
    out: bytes, err: bytes, code: int | None, limits: SandboxLimits, what: str
) -> tuple[dict[str, Any], bytes]:
    try:
        header, payload = _unpack(out)
    except (ValueError, struct.error):
        raise SandboxError("crash", f"{what} refused: its check {_death(code)}{_stderr_tail(err)}") from None
    if header.get("ok"):
        return header, payload
    if header.get("kind") == "MemoryError":
        raise SandboxError(
            "memory", f"{what} refused: it needed more than its memory limit of {limits.memory_limit_mb} MB"
        )
    if header.get("kind") == "ModelLoadError":
        raise SandboxError("refused", str(header.get("message")))
    raise SandboxError("refused", f"{what} refused: {header.get('kind')}: {header.get('message')}")


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"crashed (signal {signal.Signals(-code).name})"
    return f"ended without an answer (exit code {code})"


def _stderr_tail(err: bytes) -> str:
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    quoted = [line if len(line) <= _STDERR_LINE_CHARS else line[:_STDERR_LINE_CHARS] + "…" for line in lines]
    return (": " + " | ".join(quoted[-_STDERR_LINES:])) if quoted else ""


def _pack(header: dict[str, Any], payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return _LENGTH.pack(len(text)) + text + payload


def _unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = _LENGTH.unpack_from(data)
    if size > len(data) - _LENGTH.size:
        raise ValueError("answer cut short")
    header = json.loads(data[_LENGTH.size : _LENGTH.size + size])
    if not isinstance(header, dict):
        raise ValueError("answer header is not an object")
    return header, data[_LENGTH.size + size :]


# --- the child ---


def _child_main() -> None:
    """Read one request from stdin, run it, write the answer to the original stdout."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # what libraries print goes to stderr, never into the answer
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.nice(CHILD_NICENESS)
    header, payload = _unpack(sys.stdin.buffer.read())
    for module in PRELOAD:
        importlib.import_module(module)
    module_name, _, name = str(header["function"]).partition(":")
    function = getattr(importlib.import_module(module_name), name)
    _cap_address_space(int(header["memory_limit_mb"]))
    started = time.monotonic()
    try:
        result, body = function(header, payload)
        answer = _pack({**result, "ok": True, "seconds": time.monotonic() - started}, body)
    except BaseException as exc:  # every failure goes back to the parent, which words the refusal
        answer = _pack({"ok": False, "kind": _kind(exc), "message": str(exc)}, b"")
    with os.fdopen(answer_fd, "wb") as out:
        out.write(answer)


def _kind(exc: BaseException) -> str:
    """The error's type name; MemoryError when one caused it (loaders wrap errors in their own)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, MemoryError):
            return "MemoryError"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _cap_address_space(memory_limit_mb: int) -> None:
    """Allocations past what is mapped now plus the limit fail (MemoryError, or a native abort)."""
    with open("/proc/self/statm", "rb") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + memory_limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


if __name__ == "__main__":
    _child_main()
