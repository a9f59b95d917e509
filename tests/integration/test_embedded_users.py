"""Several processes on one embedded server: only the last user stops it, and only when a serving
process started it."""

from __future__ import annotations

from pathlib import Path

from coinfleet.db import embedded


def test_only_the_last_user_stops_the_server(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg" / "data"
    first, second = embedded.Use(pgdata), embedded.Use(pgdata)  # two open files: two users, as two processes
    try:
        _, started = embedded.start(pgdata)
        assert started
        embedded.mark_autostop(pgdata)
        assert not embedded.stop_if_last(pgdata, first)  # the second still uses it
        assert embedded.status(pgdata).running
        first.close()
        assert embedded.stop_if_last(pgdata, second)
        assert not embedded.status(pgdata).running
    finally:
        first.close()
        second.close()
        embedded.stop(pgdata)


def test_a_server_started_by_hand_outlives_its_last_user(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg" / "data"
    embedded.start(pgdata)  # as `coinfleet db start` does: no autostop mark
    use = embedded.Use(pgdata)
    try:
        assert not embedded.stop_if_last(pgdata, use)
        assert embedded.status(pgdata).running
    finally:
        use.close()
        embedded.stop(pgdata)
