"""Money's unit: whole micro-dollars (1 USD = 1,000,000). Pure.

A price is computed in USD (a float: seconds times a rate) and becomes money once, here: rounded to
the nearest micro-dollar (half away from zero). The ledger stores integers, and every sum and cap
comparison after that is exact: no epsilon, and no amount a cap lets through that the ledger's own
sum would put over it. USD floats remain for people and analysis (`usd_of`).
"""

from __future__ import annotations

import math

import polars as pl

__all__ = ["MICROS_PER_USD", "micros", "micros_expr", "usd_of", "finer_than_micros", "finer_than_micros_expr"]

MICROS_PER_USD = 1_000_000


def micros(usd: float) -> int:
    """`usd` in whole micro-dollars, rounded to the nearest (half away from zero)."""
    return int(math.copysign(math.floor(abs(usd) * MICROS_PER_USD + 0.5), usd))


def micros_expr(usd: pl.Expr) -> pl.Expr:
    """`micros`, vectorised: the same IEEE operations, so the same integer for every value."""
    return ((usd.abs() * MICROS_PER_USD + 0.5).floor() * usd.sign()).cast(pl.Int64)


def usd_of(amount: int) -> float:
    """Micro-dollars as USD, for people and analysis (`micros(usd_of(m)) == m` for any ledger amount)."""
    return amount / MICROS_PER_USD


def finer_than_micros(usd: float) -> bool:
    """Whether `usd` asks for a fraction of a micro-dollar (a cap or price the ledger cannot hold as
    written); a float's own representation error (0.1 is 100000.00000000001 micro-dollars) is not."""
    scaled = abs(usd) * MICROS_PER_USD
    return abs(scaled - round(scaled)) > max(1e-3, scaled * 1e-12)


def finer_than_micros_expr(usd: pl.Expr) -> pl.Expr:
    """`finer_than_micros`, vectorised."""
    scaled = usd.abs() * MICROS_PER_USD
    return (scaled - scaled.round()).abs() > pl.max_horizontal(pl.lit(1e-3), scaled * 1e-12)
