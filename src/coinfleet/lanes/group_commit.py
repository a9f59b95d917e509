"""Group commit: the batches lanes finish at about the same time are stored in one statement.

Twenty lanes at the head of the stream each finish a batch per ingester commit; stored one statement
per lane, PostgreSQL paid its per-statement work twenty times and twenty backends took turns on two
cores. A lane hands its batch to the group; when one of the group's connections is free it is written
at once (with any batch handed in during the same turn of the event loop), else it goes in the next
write to start, with every batch that arrived meanwhile. Nothing waits for a batch that is not ready:
the pace is set by the database, as with PostgreSQL's own group commit of its WAL.

Every batch keeps its own cursor, so the one statement is as atomic per lane as the lane's own was.
A write that fails is reported to each of its lanes, which then store their batch alone (see Lane):
one lane's bad batch costs the others a second try, never their batch. A repeated prediction (a metric
row inserted twice, as an ingester that re-sends rows does) is not a bad batch: the group writes the
same batches again skipping repeats, and keeps skipping them for REPEATS_SECONDS, since re-sent rows
come in runs — a replay costs every write the unique-index look-up, not every lane two more statements.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from coinfleet.db.database import OwnConnection
from coinfleet.lanes.store import Batch, write_batches_or_skip_repeats

log = structlog.get_logger(__name__)
#: a batch with more predictions is not grouped: it gains nothing, and the others would wait for it
GROUP_MAX_PREDICTIONS = 256
#: after a write met a repeated prediction, writes skip repeats for this long (see the module's doc)
REPEATS_SECONDS = 10.0


class GroupCommit:
    """Stores the batches handed in, several lanes' in one statement, on connections of its own: as
    many writes run at once as it has connections."""

    def __init__(self, connections: Sequence[OwnConnection]) -> None:
        self._connections = list(connections)
        self._idle = list(connections)  #: connections with no write running
        self._waiting: list[tuple[Batch, asyncio.Future[bool]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.writes = 0  #: statements that stored batches (for tests and benchmarks)
        self.batches = 0  #: batches they stored
        self.failures = 0  #: writes that failed (their lanes stored alone)
        self.repeats = 0  #: writes that met a repeated prediction and were made again skipping repeats
        self._skip_repeats_until = 0.0  #: monotonic time

    @staticmethod
    def takes(batch: Batch) -> bool:
        """Whether the batch is small enough to be grouped."""
        return len(batch.predictions) <= GROUP_MAX_PREDICTIONS

    async def write(self, batch: Batch) -> bool:
        """Store the batch with whatever other batches are waiting: True when stored, False when their
        write failed (none of them was stored, unless a broken connection hid a commit)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._idle:
            writer = asyncio.create_task(self._write_waiting(self._idle.pop()), name="group-commit")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await future

    async def close(self) -> None:
        """Close the connections once the running writes are done."""
        if self._writers:
            await asyncio.wait(self._writers)
        for connection in self._connections:
            await connection.close()

    async def _write_waiting(self, connection: OwnConnection) -> None:
        group: list[tuple[Batch, asyncio.Future[bool]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                stored = await self._write(connection, [batch for batch, _ in group])
                _settle([future for _, future in group], stored)
                group = []
        except BaseException:  # cancelled: lanes must not wait for writes that may not come, they store alone
            _settle([future for _, future in [*group, *self._waiting]], False)
            self._waiting = []
            raise
        finally:
            self._idle.append(connection)

    async def _write(self, connection: OwnConnection, batches: list[Batch]) -> bool:
        try:
            async with connection.use() as conn:
                skipping = time.monotonic() < self._skip_repeats_until
                if await write_batches_or_skip_repeats(conn, batches, skip_repeats=skipping):
                    self.repeats += 1
                    self._skip_repeats_until = time.monotonic() + REPEATS_SECONDS
        except Exception as exc:
            self.failures += 1
            log.debug("group_commit_failed", batches=len(batches), error=f"{type(exc).__name__}: {exc}")
            return False
        self.writes += 1
        self.batches += len(batches)
        return True


def _settle(futures: Sequence[asyncio.Future[bool]], stored: bool) -> None:
    for future in futures:
        if not future.done():  # a lane may have stopped waiting
            future.set_result(stored)
