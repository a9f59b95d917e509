"""pump.fun bonding-curve math: a constant product over virtual SOL and token reserves (fees ignored)."""

from __future__ import annotations

from dataclasses import dataclass

#: virtual SOL reserve of a fresh curve
START_SOL = 30.0
#: virtual token reserve of a fresh curve
START_TOKENS = 1_073_000_000.0
#: the constant product sol × tokens
CURVE_K = START_SOL * START_TOKENS
#: total token supply; market cap counts all of it
TOTAL_SUPPLY = 1_000_000_000.0
#: real tokens on sale at launch; progress is the share of them sold (checked against the recorded file)
TOKENS_FOR_SALE = 793_100_000.0
#: virtual SOL reserve at which every token on sale is sold and the coin graduates (≈ 115 SOL)
GRADUATION_SOL = CURVE_K / (START_TOKENS - TOKENS_FOR_SALE)


@dataclass(frozen=True, kw_only=True, slots=True)
class Swap:
    """The outcome of one trade against the curve."""

    sol_in_pool: float  #: virtual SOL reserve after the trade
    sol: float  #: SOL that moved (a trade is capped at graduation or at an empty curve)
    tokens: float  #: tokens that moved the other way


def price(sol_in_pool: float) -> float:
    """Token price in SOL at this reserve: sol² / k."""
    return sol_in_pool * sol_in_pool / CURVE_K


def market_cap(sol_in_pool: float) -> float:
    """Market cap in SOL: price × total supply."""
    return price(sol_in_pool) * TOTAL_SUPPLY


def tokens_in_pool(sol_in_pool: float) -> float:
    """Virtual token reserve at this SOL reserve."""
    return CURVE_K / sol_in_pool


def tokens_sold(sol_in_pool: float) -> float:
    """Tokens the curve has sold to traders so far."""
    return START_TOKENS - tokens_in_pool(sol_in_pool)


def progress_pct(sol_in_pool: float) -> float:
    """Bonding-curve progress in percent, 0 at launch and 100 at graduation."""
    return min(max(tokens_sold(sol_in_pool) / TOKENS_FOR_SALE * 100.0, 0.0), 100.0)


def is_graduated(sol_in_pool: float) -> bool:
    """Whether the curve has sold out (100 % progress)."""
    return sol_in_pool >= GRADUATION_SOL


def sol_for_progress(percent: float) -> float:
    """SOL reserve at which the curve reaches this progress."""
    return CURVE_K / (START_TOKENS - TOKENS_FOR_SALE * percent / 100.0)


def buy(sol_in_pool: float, sol: float) -> Swap:
    """Pay `sol` into the curve and receive tokens; capped where the curve graduates."""
    _check_amount(sol)
    after = min(sol_in_pool + sol, max(GRADUATION_SOL, sol_in_pool))
    return Swap(sol_in_pool=after, sol=after - sol_in_pool, tokens=_token_gap(sol_in_pool, after))


def sell(sol_in_pool: float, sol: float) -> Swap:
    """Take `sol` out of the curve for tokens; capped where traders hold no tokens any more."""
    _check_amount(sol)
    after = max(sol_in_pool - sol, min(START_SOL, sol_in_pool))
    return Swap(sol_in_pool=after, sol=sol_in_pool - after, tokens=_token_gap(after, sol_in_pool))


def sell_tokens(sol_in_pool: float, tokens: float) -> Swap:
    """Sell `tokens` back to the curve; capped at the tokens the curve has sold."""
    _check_amount(tokens)
    returned = min(tokens, max(tokens_sold(sol_in_pool), 0.0))
    after = CURVE_K / (tokens_in_pool(sol_in_pool) + returned)
    return Swap(sol_in_pool=after, sol=sol_in_pool - after, tokens=returned)


def _token_gap(low_sol: float, high_sol: float) -> float:
    return tokens_in_pool(low_sol) - tokens_in_pool(high_sol)


def _check_amount(amount: float) -> None:
    if not amount >= 0.0:
        raise ValueError(f"trade amount must be a non-negative number, got {amount}")
