"""Prices measured by the ledger: what a route's clips really cost, for the next reservations. Pure.

A Wan clip's cost is the GPU time it used, so its route's figure (`gpu_s_per_shot`) is a guess
until clips are made. Each settled clip records what it measured (`price_key`, `gpu_s_per_shot`:
GPU seconds per full shot of its model at its resolution and profile). A reservation then holds
the larger of the policy's figure and the ledger's: a high percentile of the newest clips of that
key, with a margin, so a figure that was wrong once is not wrong the next night, and one slow clip
among many does not raise every estimate.
"""

from __future__ import annotations

import polars as pl

from vidbatch.route_settings import MeasuredPrice

__all__ = ["PERCENTILE", "MARGIN", "RECENT", "NIGHTS", "since_night", "MEASUREMENT_SCHEMA", "measured_prices"]

PERCENTILE = 0.9  # of the newest clips of a key
MARGIN = 1.25  # on top of it: a render that still outgrows this grows its reservation while it runs
RECENT = 50  # clips per key: recent enough to follow new drivers, GPUs and profiles
NIGHTS = 30  # and from the newest nights only: the read is bounded by a month, not by history
MEASUREMENT_SCHEMA = {"route": pl.String(), "price_key": pl.String(), "gpu_s_per_shot": pl.Float64()}


def since_night(night: str) -> str:
    """The oldest night whose clips still count for `night` (YYYY-MM-DD; NIGHTS back)."""
    from datetime import date, timedelta

    return (date.fromisoformat(night) - timedelta(days=NIGHTS)).isoformat()


def measured_prices(samples: pl.DataFrame) -> dict[str, dict[str, MeasuredPrice]]:
    """route -> price key -> its measured figure, from MEASUREMENT_SCHEMA rows (the newest
    `RECENT` settled clips of each key, as the ledger store reads them)."""
    if samples.is_empty():
        return {}
    figures = samples.group_by("route", "price_key").agg(
        pl.col("gpu_s_per_shot").quantile(PERCENTILE, interpolation="higher").alias("high"), pl.len().alias("clips")
    )
    out: dict[str, dict[str, MeasuredPrice]] = {}
    for row in figures.iter_rows(named=True):
        out.setdefault(row["route"], {})[row["price_key"]] = MeasuredPrice(
            gpu_s_per_shot=row["high"] * MARGIN, clips=row["clips"], percentile=PERCENTILE, margin=MARGIN
        )
    return out
