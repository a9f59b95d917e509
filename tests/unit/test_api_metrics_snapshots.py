"""/metrics snapshots: scrapes share one read, get the last snapshot at once, and carry its age."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coinfleet.api import metrics
from coinfleet.api.metrics import Snapshots


async def test_scrapes_share_reads_and_never_wait_once_there_is_a_snapshot() -> None:
    reads: list[int] = []

    async def read() -> bytes:
        reads.append(len(reads))
        await asyncio.sleep(0.05)
        return f"# TYPE reads gauge\nreads {len(reads)}\n".encode()

    snapshots = Snapshots(read)
    try:
        await asyncio.gather(*(snapshots.latest() for _ in range(5)))
        assert len(reads) == 1, "five scrapes waited for one read"
        again = await asyncio.wait_for(snapshots.latest(), 0.01)  # no read in its path
        assert len(reads) == 1
    finally:
        snapshots.close()
    families = {f.name: f for f in text_string_to_metric_families(again.decode())}
    assert families["reads"].samples[0].value == 1
    assert 0 <= families["coinfleet_metrics_snapshot_age_seconds"].samples[0].value < 1


async def test_the_snapshot_is_read_again_in_the_background_while_scraped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[int] = []

    async def read() -> bytes:
        reads.append(1)
        return b""

    monkeypatch.setattr(metrics, "SNAPSHOT_SECONDS", 0.02)
    snapshots = Snapshots(read)
    try:
        await snapshots.latest()
        await asyncio.sleep(0.2)
        assert len(reads) >= 3
    finally:
        snapshots.close()
