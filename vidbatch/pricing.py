"""What every kind's prices share: the footage a row asks for, and small polars helpers. Pure.

Each kind prices itself (`ProviderKind.price`): the Wan kind in providers/wan_pricing.py, the
OpenAI-Videos kind in providers/openai_video_pricing.py, hosted Wan and Veo in their own modules.
"""

from __future__ import annotations

import polars as pl

__all__ = ["raw_seconds", "pick", "EPS"]

EPS = 1e-9


def raw_seconds() -> pl.Expr:
    """Seconds of footage a route must produce: the head trimmed away plus the finished clip."""
    return pl.col("trim_start_s") + pl.col("duration_s")


def pick(table: dict[str, object], key: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return key.replace_strict(table, default=None, return_dtype=dtype)
