"""Operator traffic below scoring: the API's sessions plan no parallel workers and run at the server's
priority (reniced they made the lanes wait on them); its processes go to operator priority, best
effort."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from api_support import running_api
from coinfleet.db.database import create_pool
from coinfleet.db.priority import OPERATOR_NICENESS

SRC = Path(__file__).parents[3] / "src"
LOWERED = """
import os
from coinfleet.db.priority import lower_process
lower_process()
lower_process(5)  # never raises a process's priority again
print(os.getpriority(os.PRIO_PROCESS, 0))
"""


async def test_operator_sessions_plan_no_parallel_workers(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, max_size=1, operator=True, application_name="coinfleet-api")
    try:
        assert await pool.fetchval("SHOW max_parallel_workers_per_gather") == "0"
    finally:
        await pool.close()
    plain = await asyncpg.connect(db_dsn)
    try:
        assert await plain.fetchval("SHOW max_parallel_workers_per_gather") != "0"
    finally:
        await plain.close()


async def test_the_api_sessions_stay_at_the_servers_priority(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api(db_dsn) as api:
        assert (await api.client.get("/api/predictions?limit=5")).status_code == 200
        rows = await pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name IN ('coinfleet-api', 'coinfleet-stream')"
        )
        assert len(rows) >= 2
        for row in rows:
            if os.path.exists(f"/proc/{row['pid']}"):  # noqa: ASYNC240 (a local server)
                assert os.getpriority(os.PRIO_PROCESS, row["pid"]) == 0


async def test_a_process_lowers_itself_to_operator_priority() -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", LOWERED],
        env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(OPERATOR_NICENESS)]
