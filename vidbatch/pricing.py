"""What every kind's prices share: the footage a row asks for, and small polars helpers. Pure.

Each kind prices itself (`ProviderKind.price`): the Wan kind in providers/wan_pricing.py, the
OpenAI-Videos kind in providers/openai_video_pricing.py, hosted Wan and Veo in their own modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

__all__ = ["raw_seconds", "pick", "EPS", "DType"]

EPS = 1e-9  # seconds and frames, not money (money is whole micro-dollars: vidbatch.micros)
DType = pl.DataType | type[pl.DataType]  # a polars dtype, as an instance or its class (pl.String)


def raw_seconds() -> pl.Expr:
    """Seconds of footage a route must produce: the head trimmed away plus the finished clip."""
    return pl.col("trim_start_s") + pl.col("duration_s")


def pick(table: Mapping[Any, object], key: pl.Expr, dtype: DType) -> pl.Expr:
    """`table[key]` for each row (null for a key it lacks), as `dtype`."""
    return key.replace_strict(table, default=None, return_dtype=dtype)
