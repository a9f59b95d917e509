"""`coinfleet bench ceiling`: how many prediction writes per second one PostgreSQL takes through the
lanes' own store statement, with no model and no feature work in front of it — the figure at which the
database, not the workers, becomes the limit of a fleet.

Writers store batches the way the group commit does (one statement carrying one batch per model,
fenced by lease epochs), each on a connection of its own, for a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from rich.table import Table

from coinfleet.bench.harness import add_models, bench_bundle, bench_database
from coinfleet.config import Settings
from coinfleet.events.cursor import Cursor, Event
from coinfleet.lanes.leases import LeaseKeeper
from coinfleet.lanes.rules import Tag
from coinfleet.lanes.starter import LANE_SERVER_SETTINGS
from coinfleet.lanes.store import Batch, NewPrediction, store_batches
from coinfleet.metrics import MetricRow
from coinfleet.models.registry import ModelRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TX = 10**12  #: made-up events' transaction id, after every real one (cursors only move forward)


async def run(
    settings: Settings, *, writers: int = 4, models: int = 20, per_batch: int = 10, seconds: float = 15
) -> dict[str, Any]:
    """Each writer stores statements of `models` batches of `per_batch` predictions for `seconds`."""
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    async with bench_database(settings) as db:
        records = await add_models(db.pool, bundle, [f"w{i:02d}" for i in range(writers * models)])
        keeper = LeaseKeeper(db.pool, seconds=600, capacity=1, worker_id="ceiling")
        epochs = {m.id: await lease_epoch(keeper, m.id) for m in records}
        deadline = time.monotonic() + seconds
        counts = await asyncio.gather(
            *(
                write_until(db.dsn, records[i * models : (i + 1) * models], epochs, per_batch, deadline)
                for i in range(writers)
            )
        )
    statements = sum(c[0] for c in counts)
    predictions = sum(c[1] for c in counts)
    return {
        "writers": writers,
        "batches_per_statement": models,
        "predictions_per_batch": per_batch,
        "statements_per_s": round(statements / seconds, 1),
        "predictions_per_s": round(predictions / seconds, 1),
    }


async def lease_epoch(keeper: LeaseKeeper, model_id: int) -> int:
    """The epoch of the model's lease, taken now."""
    lease = await keeper.acquire(model_id)
    if lease is None:
        raise RuntimeError(f"the lease of model {model_id} in a new database is held by another worker")
    return lease.epoch


async def write_until(
    dsn: str, models: list[ModelRecord], epochs: dict[int, int], per_batch: int, deadline: float
) -> tuple[int, int]:
    """Store statements until the deadline on one connection; (statements, predictions)."""
    conn = await asyncpg.connect(dsn, server_settings=LANE_SERVER_SETTINGS)
    statements = predictions = 0
    try:
        while time.monotonic() < deadline:
            seq = statements * per_batch
            batches = [batch(m, epochs[m.id], seq, per_batch) for m in models]
            await store_batches(conn, batches, skip_repeats=False)
            statements += 1
            predictions += per_batch * len(models)
    finally:
        await conn.close()
    return statements, predictions


def batch(model: ModelRecord, epoch: int, seq: int, size: int) -> Batch:
    """A batch of `size` made-up predictions on new metric times, ending at event `seq + size`."""
    return Batch(
        model=model,
        predictions=[prediction(seq + i) for i in range(1, size + 1)],
        states={},
        cursor=Cursor(tx=TX, seq=seq + size),
        keeps_scan_cache=False,
        epoch=epoch,
    )


def prediction(seq: int) -> NewPrediction:
    """A prediction for coin `c<seq % 500>` at a metric time of its own."""
    ts = T0 + timedelta(milliseconds=seq)
    row = MetricRow(
        mint=f"c{seq % 500}", timestamp=ts, phase_id_at_time=1, price_open=1.0, price_high=1.1, price_low=0.9,
        price_close=1.0, market_cap_close=30.0, volume_sol=2.0, buy_volume_sol=1.0, sell_volume_sol=1.0,
        num_buys=1, num_sells=1, unique_wallets=2,
    )  # fmt: skip
    event = Event(tx=TX, seq=seq, mint=row.mint, ts=ts, inserted_at=ts)
    return NewPrediction(event=event, row=row, probability=0.3, tag=Tag.NEGATIVE)


def render(result: dict[str, Any]) -> Table:
    """One row of figures."""
    table = Table(title="ceiling — prediction writes one PostgreSQL takes through the store statement")
    for column in (
        "writers",
        "batches per statement",
        "predictions per batch",
        "statements/s",
        "predictions/s",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(result["writers"]),
        str(result["batches_per_statement"]),
        str(result["predictions_per_batch"]),
        f"{result['statements_per_s']:,.0f}",
        f"{result['predictions_per_s']:,.0f}",
    )
    return table
