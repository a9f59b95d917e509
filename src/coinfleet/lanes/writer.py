"""Stores a lane's batches: in the group commit with other lanes' batches, or alone on its own connection."""

from __future__ import annotations

from coinfleet.db.database import OwnConnection
from coinfleet.lanes.group_commit import GroupCommit
from coinfleet.lanes.store import Batch, write_batches_or_skip_repeats


class BatchWriter:
    """One lane's way to the database: its own connection, and the process's group commit if any."""

    def __init__(self, connection: OwnConnection, group: GroupCommit | None) -> None:
        self._connection = connection
        self._group = group

    async def write(self, batch: Batch) -> None:
        """Predictions, scan-cache changes, outbox rows and the cursor in one transaction: in the group
        commit, or alone when there is no group, the batch is large, or the group's write failed."""
        group = self._group
        if group is None or not group.takes(batch) or not await group.write(batch):
            await self._store_alone(batch)

    async def close(self) -> None:
        """Close the lane's own connection."""
        await self._connection.close()

    async def _store_alone(self, batch: Batch) -> None:
        """Store on the lane's own connection. Predictions go in as a plain insert; one that repeats a
        stored coin and metric time (a metric row inserted twice) fails it, and the batch is stored
        again skipping repeats."""
        async with self._connection.use() as conn:
            await write_batches_or_skip_repeats(conn, [batch], skip_repeats=False)
