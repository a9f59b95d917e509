"""The latency ring keeps exactly the newest samples, like a bounded deque."""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.lanes.stats import Samples

chunks = st.lists(st.lists(st.floats(allow_nan=False, width=32), max_size=25), max_size=12)


@given(chunks, st.integers(min_value=1, max_value=17))
def test_the_ring_keeps_the_newest_samples(batches: list[list[float]], size: int) -> None:
    ring, expected = Samples(size), deque[float](maxlen=size)
    for batch in batches:
        ring.extend(batch)
        expected.extend(batch)
        assert len(ring) == len(expected)
        assert sorted(ring.values().tolist()) == sorted(expected)


def test_quantiles_and_clear() -> None:
    ring = Samples(1000)
    assert ring.quantile(0.5) is None
    ring.extend(np.arange(101, dtype=np.float64))
    assert ring.quantile(0.99) == 99.0
    ring.clear()
    assert len(ring) == 0 and ring.quantile(0.5) is None
