"""`bench api`'s CPU by part: which process counts where, and cores from two readings."""

from __future__ import annotations

import os

from coinfleet.bench import cpu_parts
from coinfleet.bench.cpu_parts import Reading, classify, cores


def test_each_process_of_the_tree_and_each_backend_gets_its_part() -> None:
    procs = {
        100: (1, "python", 0),  # the benchmark: the lanes' process
        101: (100, "python", 0),  # the fork server
        102: (101, "python", 0),  # a runner
        103: (100, "coinfleet-http", 0),
        104: (103, "coinfleet-score", 0),
        105: (100, "cf-bench-rest", 0),
        106: (100, "cf-bench-feed", 0),
        107: (103, "python", 0),  # anything else the HTTP process starts counts as the HTTP process
        200: (1, "postgres", 0),
        201: (1, "postgres", 0),
        300: (1, "python", 0),  # someone else's
    }
    parts = classify(100, procs, {200: "coinfleet-api", 201: ""})
    assert parts == {
        100: cpu_parts.LANES, 101: cpu_parts.HELPERS, 102: cpu_parts.RUNNERS, 103: "HTTP process",
        104: "manual scoring child", 105: "API clients: REST + MCP (bench)", 106: "ingester (bench)",
        107: "HTTP process",
        200: "postgres: coinfleet-api", 201: "postgres: lanes + ingester",
    }  # fmt: skip


def test_cores_are_cpu_seconds_per_wall_second_and_the_rest_is_the_machine() -> None:
    hz = os.sysconf("SC_CLK_TCK")
    start = Reading(at=10.0, ticks={"lanes' process": 0, "runners": 5 * hz}, busy=0)
    end = Reading(
        at=12.0, ticks={"lanes' process": 2 * hz, "runners": 6 * hz, "HTTP process": 0}, busy=4 * hz
    )
    assert cores(start, end) == {"lanes' process": 1.0, "runners": 0.5, cpu_parts.REST: 0.5}
    assert cores(None, end) == {}
