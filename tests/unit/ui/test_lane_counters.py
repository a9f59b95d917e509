"""The overview reads the lanes' event and restart counters from the serving process's exposition."""

from __future__ import annotations

from typing import Any

from coinfleet.config import Settings
from coinfleet.ui import context, data

EXPOSITION = b"""# HELP coinfleet_lane_events_total Events a model's cursor has passed
# TYPE coinfleet_lane_events_total counter
coinfleet_lane_events_total{model="fast"} 1234.0
coinfleet_lane_events_created{model="fast"} 1.7e9
# HELP coinfleet_runner_restarts_total Runner processes started again after a failure
# TYPE coinfleet_runner_restarts_total counter
coinfleet_runner_restarts_total{model="flaky"} 3.0
# HELP other_total Something else
# TYPE other_total counter
other_total{model="fast"} 9.0
"""


def _install(source: Any) -> None:
    context.install(context.UiContext(pool=lambda: None, settings=Settings(), lane_metrics=source))


async def test_counters_come_from_the_lanes_exposition() -> None:
    async def exposition() -> bytes:
        return EXPOSITION

    _install(exposition)
    assert await data.lane_counters() == {(data.EVENTS, "fast"): 1234, (data.RESTARTS, "flaky"): 3}


async def test_an_unreachable_serving_process_gives_no_counters() -> None:
    async def broken() -> bytes:
        raise ConnectionError("gone")

    _install(broken)
    assert await data.lane_counters() == {}
