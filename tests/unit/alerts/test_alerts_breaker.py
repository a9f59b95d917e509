"""A receiver's circuit breaker: a failure pauses every lane, one probe at a time, success closes it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coinfleet.alerts.breaker import UNLIMITED, Breaker
from coinfleet.alerts.rules import RetryPolicy

POLICY = RetryPolicy(max_age_seconds=86_400, initial_seconds=1, max_seconds=60, jitter_seconds=0)


def test_closed_admits_everyone_without_waiting() -> None:
    breaker = Breaker(policy=POLICY)
    assert breaker.wait(0) == 0 and breaker.admit(0) == UNLIMITED and breaker.admit(0) == UNLIMITED


def test_a_failure_pauses_everyone_until_the_delay_is_over_then_admits_one_probe() -> None:
    breaker = Breaker(policy=POLICY)
    assert breaker.failed(100, 0.0) == 1
    assert breaker.admit(100.5) == 0 and breaker.wait(100.5) == 0.5
    assert breaker.admit(101) == 1  # the probe
    assert breaker.admit(101) == 0 and breaker.wait(101) > 0  # the other lanes wait for its answer
    assert breaker.succeeded()  # it was open: the receiver is back
    assert breaker.closed and breaker.admit(101) == UNLIMITED
    assert not breaker.succeeded()


def test_failed_probes_back_off_doubling_up_to_the_cap() -> None:
    breaker = Breaker(policy=POLICY)
    delays = []
    now = 0.0
    for _ in range(9):
        delays.append(breaker.failed(now, 0.0))
        now += delays[-1]
        assert breaker.admit(now) == 1
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_probe_given_up_lets_another_lane_probe() -> None:
    breaker = Breaker(policy=POLICY)
    breaker.failed(0, 0.0)
    assert breaker.admit(5) == 1
    breaker.probe_over()
    assert breaker.admit(5) == 1


@given(st.lists(st.tuples(st.booleans(), st.floats(min_value=0, max_value=1000)), max_size=50))
def test_at_most_one_probe_while_open(events: list[tuple[bool, float]]) -> None:
    breaker = Breaker(policy=POLICY)
    now = 0.0
    for ok, step in events:
        now += step
        if ok:
            breaker.succeeded()
        else:
            breaker.failed(now, 0.5)
        if not breaker.closed:
            granted = [breaker.admit(now + 1000) for _ in range(3)]
            assert sorted(granted) == [0, 0, 1]
            breaker.probe_over()
