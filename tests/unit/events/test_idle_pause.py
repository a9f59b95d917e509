"""A reader's pause between empty reads."""

from __future__ import annotations

import pytest

from coinfleet.events.notifier import IdlePause


def test_held_back_events_get_short_doubling_pauses_up_to_the_poll_interval() -> None:
    pause = IdlePause(poll_interval=0.005)
    assert [pause.seconds(held_back=True) for _ in range(5)] == pytest.approx(
        [0.001, 0.002, 0.004, 0.005, 0.005]
    )
    pause.reset()
    assert pause.seconds(held_back=True) == pytest.approx(0.001)
    assert pause.seconds(held_back=False) == 0.005
    assert pause.seconds(held_back=True) == pytest.approx(0.001)  # nothing held back resets too


def test_events_held_back_for_long_never_overflow_the_pause() -> None:
    pause = IdlePause(poll_interval=2.0)
    pauses = [pause.seconds(held_back=True) for _ in range(5000)]  # 2.0 ** 1024 overflowed a float
    assert pauses[-1] == 2.0 and max(pauses) == 2.0
