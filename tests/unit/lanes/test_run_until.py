"""run_until stops a service when asked, and does not hang when the service ends by itself."""

from __future__ import annotations

import asyncio

import pytest

from coinfleet.lanes.serve import run_until


class Service:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        if self.fail:
            raise RuntimeError("broke at start")
        await self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


async def test_stops_the_service_when_asked() -> None:
    service, stop = Service(), asyncio.Event()
    task = asyncio.create_task(run_until(service, stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert service.stopped.is_set()


async def test_a_failing_service_surfaces_instead_of_waiting_for_stop() -> None:
    with pytest.raises(RuntimeError, match="broke at start"):
        await asyncio.wait_for(run_until(Service(fail=True), asyncio.Event()), 5)
