"""A replay keeps the file's spacing and never dates a row ahead of the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from coinfleet.feed.live import pass_start

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@given(
    length=st.floats(0, 86_400).map(lambda s: timedelta(seconds=s)),
    speed=st.one_of(st.none(), st.floats(0.001, 10_000)),
    at=st.floats(0, 1),
)
def test_no_row_is_due_after_its_own_time(length: timedelta, speed: float | None, at: float) -> None:
    start = pass_start(NOW, length, speed)
    offset = length * at  #: a row this far into the pass
    written_at = NOW if speed is None else NOW + offset / speed
    assert start + offset <= written_at + timedelta(microseconds=1)


def test_the_last_row_lands_when_it_is_due() -> None:
    hour = timedelta(hours=1)
    assert pass_start(NOW, hour, 20) + hour == NOW + hour / 20
    assert pass_start(NOW, hour, None) + hour == NOW
    assert pass_start(NOW, hour, 1) == NOW
    assert pass_start(NOW, hour, 0.5) == NOW  # slower than real time starts now
