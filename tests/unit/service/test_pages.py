"""Page cursors: opaque, round-trip exactly, refuse anything they did not make; queries check their ranges."""

from __future__ import annotations

from datetime import UTC, datetime

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.errors import InvalidRequest
from coinfleet.service.common import FIRST_PAGE, decode_cursor, encode_cursor, split_page
from coinfleet.service.schemas import MAX_PAGE_SIZE, AlertQuery, PredictionQuery


@given(st.integers(min_value=0, max_value=FIRST_PAGE))
def test_a_cursor_round_trips(last_id: int) -> None:
    cursor = encode_cursor(last_id)
    assert decode_cursor(cursor) == last_id


@pytest.mark.parametrize(
    "bad", ["", "x", "%%%", "aWQ6", "aWQ6LTE", "aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ", "MTIz"]
)
def test_a_foreign_cursor_is_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="next_cursor"):
        decode_cursor(bad)


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None) == FIRST_PAGE


def test_split_page_says_whether_more_follow() -> None:
    assert split_page([5, 4, 3], 3, lambda x: x) == ([5, 4, 3], None)
    page, cursor = split_page([5, 4, 3, 2], 3, lambda x: x)
    assert page == [5, 4, 3] and cursor is not None and decode_cursor(cursor) == 3
    assert split_page([], 3, lambda x: x) == ([], None)


def test_queries_check_their_values() -> None:
    assert PredictionQuery().limit == AlertQuery().limit == 50
    PredictionQuery(limit=MAX_PAGE_SIZE, since=datetime(2026, 1, 1, tzinfo=UTC))
    for bad in (
        {"limit": MAX_PAGE_SIZE + 1},
        {"ath_min": 5, "ath_max": -5},
        {"change_min": 1, "change_max": 0},
        {"since": datetime(2026, 1, 2, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
        {"probability_min": 1.5},
        {"state": "pending"},
        {"rule": "sometime"},
    ):
        with pytest.raises(pydantic.ValidationError):
            PredictionQuery.model_validate(bad)
    with pytest.raises(pydantic.ValidationError):
        AlertQuery.model_validate({"state": "gone"})
