"""Bonding-curve math: hand-computed cases and round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinfleet.feed import curve

pools = st.floats(min_value=curve.START_SOL, max_value=curve.GRADUATION_SOL)
amounts = st.floats(min_value=1e-6, max_value=200.0)


def test_constants_follow_from_the_reserves() -> None:
    assert curve.CURVE_K == 32_190_000_000.0
    # 32.19e9 / (1.073e9 - 793.1e6) = 32.19e9 / 279.9e6
    assert round(curve.GRADUATION_SOL, 6) == 115.005359


def test_price_and_market_cap_at_launch() -> None:
    # 30² / 32.19e9
    assert curve.price(30.0) == pytest.approx(2.7958993e-08, rel=1e-7)
    assert curve.market_cap(30.0) == pytest.approx(27.958993, rel=1e-7)


def test_price_grows_with_the_square_of_the_pool() -> None:
    assert curve.price(60.0) == pytest.approx(4 * curve.price(30.0))


@pytest.mark.parametrize(
    ("sol_in_pool", "recorded_progress"),
    [(30.0, 0.0), (30.100334, 0.45), (33.997025, 15.91), (58.73959, 66.19)],
)
def test_progress_matches_the_recorded_column(sol_in_pool: float, recorded_progress: float) -> None:
    assert round(curve.progress_pct(sol_in_pool), 2) == recorded_progress


def test_progress_is_clipped_to_0_and_100() -> None:
    assert curve.progress_pct(curve.GRADUATION_SOL) == pytest.approx(100.0)
    assert curve.progress_pct(200.0) == 100.0
    assert curve.progress_pct(29.0) == 0.0


def test_graduation() -> None:
    assert not curve.is_graduated(115.0)
    assert curve.is_graduated(curve.GRADUATION_SOL)
    assert curve.sol_for_progress(100.0) == pytest.approx(curve.GRADUATION_SOL)


def test_buy_one_sol_at_launch() -> None:
    swap = curve.buy(30.0, 1.0)
    # 1.073e9 - 32.19e9 / 31
    assert (swap.sol_in_pool, swap.sol) == (31.0, 1.0)
    assert swap.tokens == pytest.approx(34_612_903.2258)


def test_sell_one_sol_back() -> None:
    swap = curve.sell(31.0, 1.0)
    assert swap.sol_in_pool == 30.0
    assert swap.tokens == pytest.approx(34_612_903.2258)


def test_buy_is_capped_at_graduation() -> None:
    swap = curve.buy(114.5, 5.0)
    assert swap.sol_in_pool == curve.GRADUATION_SOL
    assert swap.sol == pytest.approx(curve.GRADUATION_SOL - 114.5)


def test_sell_is_capped_at_an_empty_curve() -> None:
    assert curve.sell(30.5, 1.0).sol == pytest.approx(0.5)
    assert curve.sell_tokens(31.0, 1e12).sol_in_pool == pytest.approx(30.0)


@pytest.mark.parametrize("amount", [-1.0, math.nan])
def test_a_negative_or_nan_amount_is_refused(amount: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        curve.buy(30.0, amount)
    with pytest.raises(ValueError, match="non-negative"):
        curve.sell(30.0, amount)
    with pytest.raises(ValueError, match="non-negative"):
        curve.sell_tokens(30.0, amount)


@given(pool=pools, sol=amounts)
def test_buy_then_sell_the_tokens_is_a_round_trip(pool: float, sol: float) -> None:
    bought = curve.buy(pool, sol)
    sold = curve.sell_tokens(bought.sol_in_pool, bought.tokens)
    assert sold.sol_in_pool == pytest.approx(pool, rel=1e-9)
    assert sold.sol == pytest.approx(bought.sol, rel=1e-6, abs=1e-9)


@given(pool=pools, sol=amounts)
def test_sell_of_sol_undoes_a_buy(pool: float, sol: float) -> None:
    bought = curve.buy(pool, sol)
    sold = curve.sell(bought.sol_in_pool, bought.sol)
    assert sold.sol_in_pool == pytest.approx(pool, rel=1e-9)
    assert sold.tokens == pytest.approx(bought.tokens, rel=1e-6, abs=1e-3)


@given(pool=pools, sol=amounts)
def test_a_buy_raises_price_and_progress(pool: float, sol: float) -> None:
    after = curve.buy(pool, sol).sol_in_pool
    assert curve.price(after) >= curve.price(pool)
    assert curve.progress_pct(after) >= curve.progress_pct(pool)
    assert after <= max(curve.GRADUATION_SOL, pool)
