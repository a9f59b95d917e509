"""The embedded server's wrapper: stop and start again within one process."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from coinfleet.db import embedded


async def test_a_stopped_server_starts_again_in_the_same_process(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg" / "data"
    for _ in range(2):
        dsn, started = embedded.start(pgdata)
        assert started
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        assert embedded.stop(pgdata)
    assert not embedded.status(pgdata).running
