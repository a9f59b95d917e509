"""Why an alert reached the chaos benchmark's receiver more than once: for each such idempotency key,
when it arrived, what the benchmark had done last before the repeat, and the attempt log of its alert;
and how long the window is in which a worker's death makes a repeat unavoidable (from the receiver
reading an alert to the worker storing that it was answered). Times are `time.time()` seconds."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from coinfleet.db.sql import query


async def explain(
    conn: asyncpg.Connection,
    arrivals: Mapping[str, Sequence[float]],
    moments: Sequence[tuple[float, str]],
    started: float,
) -> list[dict[str, Any]]:
    """One record per key that arrived more than once (times in seconds since `started`): its
    arrivals, what the benchmark did from the first arrival to the repeat (a kill of the worker that
    sent it first, say: its pid is in the attempt's worker name), and its attempts."""
    repeated = {key: sorted(times) for key, times in arrivals.items() if len(times) > 1}
    if not repeated:
        return []
    attempts: dict[str, list[dict[str, Any]]] = {key: [] for key in repeated}
    for row in await conn.fetch(query("attempts_of_keys"), list(repeated)):
        attempts[row["idempotency_key"]].append(_attempt(row, started))
    return [
        {
            "key": key,
            "arrived_s": [round(t - started, 2) for t in times],
            "meanwhile": _between(moments, times[0], times[1], started),
            "attempts": attempts[key],
        }
        for key, times in sorted(repeated.items(), key=lambda item: item[1][1])
    ]


async def answer_to_commit(
    conn: asyncpg.Connection, arrivals: Mapping[str, Sequence[float]], havoc_over: float
) -> dict[str, Any]:
    """Milliseconds from the receiver reading an alert to its worker storing the answer (p50, p99,
    max, and their sum over all alerts in s): a worker killed inside this window leaves the alert to be
    sent again. The same figures for the alerts that arrived until `havoc_over` (the last kill, pause or
    restart) under `during_havoc`: only there can a kill fall into a window, and the workers are busiest."""
    windows: list[tuple[float, float]] = []  #: (arrival, window)
    for row in await conn.fetch(query("delivered_attempts")):
        times = sorted(arrivals.get(row["idempotency_key"], ()))
        at = bisect.bisect_right(times, row["finished"])
        if at and row["finished"] is not None:
            windows.append((times[at - 1], row["finished"] - times[at - 1]))
    figures = _figures([w for _, w in windows])
    if figures:
        figures["during_havoc"] = _figures([w for arrived, w in windows if arrived <= havoc_over])
    return figures


def _figures(windows: list[float]) -> dict[str, Any]:
    if not windows:
        return {}
    windows.sort()
    return {
        "alerts": len(windows),
        "p50": _ms(windows, 0.5),
        "p99": _ms(windows, 0.99),
        "max": _ms(windows, 1.0),
        "total_s": round(sum(windows), 2),
    }


def _ms(ordered: Sequence[float], q: float) -> float:
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _between(moments: Sequence[tuple[float, str]], first: float, repeat: float, started: float) -> list[str]:
    return [f"{action} at {t - started:.2f}s" for t, action in moments if first <= t <= repeat]


def _attempt(row: asyncpg.Record, started: float) -> dict[str, Any]:
    finished = row["finished"]
    return {
        "attempt": row["attempt"],
        "worker": row["worker"],
        "status": row["status_code"],
        "error": row["error"],
        "started_s": round(row["started"] - started, 2),
        "finished_s": None if finished is None else round(finished - started, 2),
    }
