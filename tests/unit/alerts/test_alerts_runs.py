"""A run of claimed alerts starts in queue order, never two of one coin at once; a failure stops it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from coinfleet.alerts.runs import Run


@dataclass(frozen=True)
class Alert:
    id: int
    mint: str


def alerts(coins: str) -> list[Alert]:
    return [Alert(id=n, mint=c) for n, c in enumerate(coins)]


def test_takes_in_order_skipping_coins_in_flight() -> None:
    run = Run(alerts("aab"))
    first, second = run.take(), run.take()
    assert (first, second) == (Alert(0, "a"), Alert(2, "b"))
    assert run.take() is None  # the second "a" waits for the first
    assert first is not None
    run.finished(first, failed=False)
    assert run.take() == Alert(1, "a")


def test_a_failure_stops_new_starts() -> None:
    run = Run(alerts("abc"))
    first = run.take()
    assert first is not None and run.take() == Alert(1, "b")
    run.finished(first, failed=True)
    assert run.stopped and run.take() is None


@given(st.text(alphabet="abc", max_size=30), st.integers(min_value=1, max_value=5), st.randoms())
def test_each_coin_goes_in_order_and_never_twice_at_once(coins: str, width: int, rnd: random.Random) -> None:
    run = Run(alerts(coins))
    in_flight: list[Alert] = []
    started: list[Alert] = []
    while True:
        while len(in_flight) < width and (alert := run.take()) is not None:
            assert alert.mint not in {a.mint for a in in_flight}
            in_flight.append(alert)
            started.append(alert)
        if not in_flight:
            break
        done = in_flight.pop(rnd.randrange(len(in_flight)))
        run.finished(done, failed=False)
    assert sorted(a.id for a in started) == list(range(len(coins)))
    for coin in "abc":
        ids = [a.id for a in started if a.mint == coin]
        assert ids == sorted(ids)
