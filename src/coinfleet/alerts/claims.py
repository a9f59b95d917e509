"""A delivery worker's claims: the live database session they name, and answers kept until stored.

A claim names the worker's session, so the worker holds one connection open for it and replaces it
when it is lost; with no live session it claims and starts nothing. A claim outlives a PostgreSQL
restart for a short grace: an answer that came while the database was away is parked here and stored
before anything else once it is back, so nobody sends that alert again.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

import asyncpg
import structlog

from coinfleet.alerts import outbox
from coinfleet.alerts.outbox import Claim, ClaimedAlert, Outcome, Session
from coinfleet.db.outage import DATABASE_ERRORS

log = structlog.get_logger(__name__)
#: how long a claim outlives a server restart that ended its session: its worker may hold the answer to
#: an alert it sent just before and stores it once it reconnects (a delivery poll or two); taking the
#: alert sooner would send it twice, and a worker that died with the server delays its alerts this long
RESTART_GRACE_SECONDS = 10.0


class Claims:
    """One worker's session and claims: claim, start, settle and give back alerts in its name."""

    def __init__(self, *, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._session_conn: asyncpg.Connection | None = None
        self._session: Session | None = None
        #: outcomes whose storing failed with the database away: stored before anything else when it is back
        self._parked: list[Outcome] = []

    @property
    def live(self) -> bool:
        """Whether there is a session to name (none until the first tick, or after one was lost)."""
        return self._session is not None

    async def keep_session(self) -> None:
        """Hold the connection whose session the claims name; open a new one when it was lost (a
        session that ended, even one ended by the server, voids this worker's claims for everyone)."""
        if self._session_conn is not None and not self._session_conn.is_closed():
            try:
                await outbox.session(self._session_conn, self._worker)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("delivery_session_lost", worker=self._worker, error=str(exc))
                self._session_conn.terminate()
        self._session = None
        self._session_conn = await asyncpg.connect(self._dsn)
        self._session = await outbox.session(self._session_conn, self._worker)
        log.debug("delivery_session", worker=self._worker, pid=self._session.pid)

    async def close(self) -> None:
        if self._session_conn is not None:
            await self._session_conn.close()

    async def settle_parked(self) -> None:
        """Store the outcomes parked during an outage (their claims outlived it unless it was long)."""
        while self._parked:
            outcome = self._parked.pop(0)
            try:
                async with self._pool.acquire() as conn:
                    await outbox.settle(conn, self._worker, outcome)
            except DATABASE_ERRORS:
                self._parked.insert(0, outcome)
                raise
            log.info("alert_outcome_stored_late", alert_id=outcome.alert.id, state=outcome.state)

    async def claim(self, model_id: int, lease: float, limit: int) -> Claim | None:
        """A run from the head of the model's queue, None with no live session to name."""
        session = self._session
        if session is None:
            return None
        async with self._pool.acquire() as conn:
            return await outbox.claim(conn, model_id, session, lease, limit, RESTART_GRACE_SECONDS)

    async def start(self, alert: ClaimedAlert | None) -> ClaimedAlert | None:
        """The alert with its attempt started (the claim starts the head's), None when lost or none."""
        if alert is None or alert.attempt_id is not None:
            return alert
        try:
            async with self._pool.acquire() as conn:
                return await outbox.start(conn, self._worker, alert)
        except DATABASE_ERRORS:  # not started, not sent: its claim ends with its session
            return None

    async def settle(self, outcome: Outcome, following: ClaimedAlert | None) -> ClaimedAlert | None:
        """Store the outcome at once (the receiver may have it: until this commits, a worker that dies
        leaves it to be sent again) and start `following`; with the database away, park it until it is
        back (and start nothing)."""
        try:
            async with self._pool.acquire() as conn:
                return await outbox.settle(conn, self._worker, outcome, following)
        except DATABASE_ERRORS as exc:
            self._parked.append(outcome)
            log.warning(
                "alert_outcome_parked", alert_id=outcome.alert.id, error=f"{type(exc).__name__}: {exc}"
            )
            return None

    async def release(self, alerts: Sequence[ClaimedAlert]) -> None:
        """Give back the claims still held on these alerts (settled ones hold none)."""
        if not alerts:
            return
        try:
            async with self._pool.acquire() as conn:
                await outbox.release(conn, alerts, self._worker)
        except DATABASE_ERRORS:  # the claims end with the session (or after the restart's grace)
            pass
