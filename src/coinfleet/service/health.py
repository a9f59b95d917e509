"""Health: whether the database answers, no model is quarantined and the event horizon moves."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import asyncpg

from coinfleet.db.outage import DOWN
from coinfleet.db.sql import query
from coinfleet.service.common import Db
from coinfleet.service.models import lanes
from coinfleet.service.schemas import COUNT_CAP, Health, Lane

#: a transaction open this long holds every lane back; health reports it as a problem
HORIZON_AGE_LIMIT_SECONDS = 60.0


def _problems(horizon_age: float, quarantined: dict[str, str], waiting: dict[str, str]) -> list[str]:
    problems = [f"model {name} is quarantined: {reason}" for name, reason in quarantined.items()]
    problems += [f"{loop} waits for the database: {error}" for loop, error in waiting.items()]
    if horizon_age > HORIZON_AGE_LIMIT_SECONDS:
        problems.append(
            f"a transaction open for {horizon_age:.0f} s holds the event horizon back; every lane waits"
        )
    return problems


def _down(error: Exception) -> Health:
    return Health(
        status="down",
        problems=[f"the database does not answer: {error}"],
        checked_at=datetime.now(UTC),
        database=False,
        horizon_age_seconds=None,
        events_stored=None,
        models={},
        quarantined={},
        alerts_pending=None,
        alerts_dead=None,
        waiting_for_database=dict(DOWN),
    )


def _health(row: asyncpg.Record, all_lanes: list[Lane]) -> Health:
    quarantined = {
        lane.name: lane.status_reason or "no reason given"
        for lane in all_lanes
        if lane.status == "quarantined"
    }
    waiting = dict(DOWN)
    problems = _problems(row["horizon_age_seconds"], quarantined, waiting)
    return Health(
        status="degraded" if problems else "ok",
        problems=problems,
        checked_at=datetime.now(UTC),
        database=True,
        horizon_age_seconds=row["horizon_age_seconds"],
        events_stored=row["events_stored"],
        models=dict(Counter(lane.status for lane in all_lanes)),
        quarantined=quarantined,
        alerts_pending=row["alerts_pending"],
        alerts_dead=row["alerts_dead"],
        waiting_for_database=waiting,
        owners={lane.name: lane.owner for lane in all_lanes if lane.status == "active"},
    )


async def ping(db: Db) -> None:
    """Return once the database has answered a query."""
    await db.fetchval(query("ping"))


async def health(db: Db) -> Health:
    """The service's health; "down" (never an exception) when the database does not answer."""
    try:
        row = await db.fetchrow(query("fleet_health"), COUNT_CAP)
        all_lanes = await lanes(db)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return _down(exc)
    return _health(row, all_lanes)
