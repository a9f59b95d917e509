"""What the predictions' (model_id, id) index (migration 0021) costs each stored prediction, measured side by
side: the lanes' own store statement (20 models × 35-row batches in one statement, as the group commit
sends them) with the index and without it, in alternating rounds on one throwaway database that already
holds HISTORY predictions, so drift in how busy the machine is falls on both alike.

    DATABASE_URL=postgresql://… COINFLEET_HOME=… .venv/bin/python scripts/bench_prediction_index.py \\
        [--history 1000000] [--rounds 6] [--statements 150]

Prints one JSON object: per variant the backend's CPU time (user + system, read from /proc for the
server process serving the connection, so the server must run on this machine) and the wall time per
stored prediction, the median of the rounds, and the ratios with / without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import asyncpg

from coinfleet.bench.ceiling import batch, lease_epoch
from coinfleet.bench.harness import add_models, bench_bundle, bench_database
from coinfleet.config import Settings
from coinfleet.lanes.leases import LeaseKeeper
from coinfleet.lanes.starter import LANE_SERVER_SETTINGS
from coinfleet.lanes.store import store_batches
from coinfleet.logs import configure_logging

MODELS = 20
PER_BATCH = 35
INDEX = "coinfleet_predictions_model_id_idx"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def run(settings: Settings, history: int, rounds: int, per_round: int) -> dict[str, Any]:
    bundle = await asyncio.to_thread(bench_bundle, settings.home)
    async with bench_database(settings) as db:
        records = await add_models(db.pool, bundle, [f"ix{i:02d}" for i in range(MODELS)])
        keeper = LeaseKeeper(db.pool, seconds=3600, capacity=MODELS, worker_id="index-bench")
        epochs = {m.id: await lease_epoch(keeper, m.id) for m in records}
        conn = await asyncpg.connect(db.dsn, server_settings=LANE_SERVER_SETTINGS)
        try:
            await conn.execute(
                "INSERT INTO coinfleet_predictions (model_id, model_version, mint, metric_ts, probability,"
                " prediction, tag, alert_threshold, target, evaluate_at, event_tx, event_seq)"
                " SELECT ($1::int[])[1 + i % $3], 1, 'h' || (i % 1000), '2025-01-01'::timestamptz"
                " + make_interval(secs => i), 0.2, 0, 'negative', 0.7, '{}', '2025-01-01', '1'::xid8, i"
                " FROM generate_series(1, $2) AS i",
                [m.id for m in records], history, MODELS, timeout=3600,
            )  # fmt: skip
            await conn.execute("VACUUM ANALYZE coinfleet_predictions", timeout=3600)
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            seq = 0
            found: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
            for r in range(rounds):
                for variant in ("with", "without") if r % 2 == 0 else ("without", "with"):
                    await conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
                    if variant == "with":
                        await conn.execute(f"CREATE INDEX {INDEX} ON coinfleet_predictions (model_id, id)")
                    await conn.execute("CHECKPOINT")
                    cpu0, wall0 = cpu_seconds(backend), time.perf_counter()
                    for _ in range(per_round):
                        await store_batches(
                            conn,
                            [batch(m, epochs[m.id], seq, PER_BATCH) for m in records],
                            skip_repeats=False,
                        )
                        seq += PER_BATCH
                    stored = per_round * MODELS * PER_BATCH
                    found[variant].append(
                        (
                            (cpu_seconds(backend) - cpu0) / stored * 1e6,
                            (time.perf_counter() - wall0) / stored * 1e6,
                        )
                    )
        finally:
            await conn.close()
    medians = {
        v: {
            "backend_cpu_us": round(statistics.median(c for c, _ in rows), 2),
            "wall_us": round(statistics.median(w for _, w in rows), 2),
            "rounds_cpu_us": [round(c, 2) for c, _ in rows],
        }
        for v, rows in found.items()
    }
    return {
        "history": history,
        "predictions_per_round": per_round * MODELS * PER_BATCH,
        "rounds": rounds,
        **medians,
        "cpu_ratio": round(medians["with"]["backend_cpu_us"] / medians["without"]["backend_cpu_us"], 3),
        "wall_ratio": round(medians["with"]["wall_us"] / medians["without"]["wall_us"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000, help="predictions stored before measuring")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per variant")
    parser.add_argument("--statements", type=int, default=150, help="store statements per round")
    args = parser.parse_args()
    settings = Settings(log_level="warning")
    configure_logging(settings)
    print(json.dumps(asyncio.run(run(settings, args.history, args.rounds, args.statements))))


if __name__ == "__main__":
    main()
