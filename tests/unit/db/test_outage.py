"""An outage is said once when it starts and once when it ends; retries back off to a cap."""

from __future__ import annotations

import asyncpg
from structlog.testing import capture_logs

from coinfleet.db.outage import DOWN, MAX_BACKOFF_SECONDS, Outage, is_outage, mirror
from coinfleet.errors import DatabaseError


def test_backoff_doubles_up_to_the_cap_and_starts_over_after_a_success() -> None:
    outage = Outage("test-loop", first=0.1)
    waits = [outage.failed(ConnectionRefusedError()) for _ in range(8)]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(waits) == MAX_BACKOFF_SECONDS == waits[-1]
    outage.succeeded()
    assert outage.failed(ConnectionRefusedError()) == 0.1
    outage.succeeded()


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    outage = Outage("logged-loop")
    with capture_logs() as logs:
        for _ in range(5):
            outage.failed(OSError("socket gone"))
        assert DOWN["logged-loop"] == "OSError: socket gone"
        outage.succeeded()
        outage.succeeded()
    assert [entry["event"] for entry in logs] == ["database_unreachable", "database_back"]
    assert logs[1]["attempts"] == 5
    assert "logged-loop" not in DOWN
    assert outage.outages == 1 and not outage.down


def test_connection_errors_are_outages_and_statement_errors_are_not() -> None:
    assert is_outage(ConnectionRefusedError())
    assert is_outage(TimeoutError())
    assert is_outage(asyncpg.CannotConnectNowError("starting up"))
    assert is_outage(asyncpg.ConnectionDoesNotExistError("closed"))
    assert is_outage(DatabaseError("cannot connect"))
    assert is_outage(
        asyncpg.InternalClientError("cannot switch to state 21; another operation (2) is in progress")
    )
    assert not is_outage(asyncpg.UniqueViolationError("dup"))
    assert not is_outage(ValueError("bad"))


def test_another_process_s_waiting_loops_are_mirrored_and_dropped_when_back() -> None:
    mirrored = mirror({"lane:far": "OSError: gone", "evaluation": "OSError: gone"}, set())
    assert DOWN["lane:far"] == "OSError: gone" and "evaluation" in DOWN
    mirrored = mirror({"evaluation": "OSError: gone"}, mirrored)
    assert "lane:far" not in DOWN and "evaluation" in DOWN
    assert mirror({}, mirrored) == set()
    assert "evaluation" not in DOWN
