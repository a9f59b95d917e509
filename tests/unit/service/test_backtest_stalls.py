"""A backtest names the recorded file's feed stalls: the silences where no rule can judge a horizon end."""

from __future__ import annotations

from pathlib import Path

from coinfleet.cli.backtest import describe_stalls
from coinfleet.feed.recorded import read_recorded
from coinfleet.service.backtest import feed_stalls


def test_the_recorded_day_has_two_silences_longer_than_the_grace_period(recorded_file: Path) -> None:
    stalls = feed_stalls(read_recorded(recorded_file).rows, 120)
    assert [(f"{s.last_row:%H:%M:%S}", f"{s.next_row:%H:%M:%S}", round(s.seconds)) for s in stalls] == [
        ("17:48:10", "17:58:36", 626),
        ("18:12:26", "18:14:29", 123),
    ]
    line = describe_stalls(stalls, 120)
    assert "2025-06-06 17:48:10–17:58:36 (626 s)" in line and "18:12:26–18:14:29 (123 s)" in line
    assert feed_stalls(read_recorded(recorded_file).rows, 700) == []


def test_no_stall_is_said_as_none() -> None:
    assert describe_stalls([], 120).endswith(": none")
