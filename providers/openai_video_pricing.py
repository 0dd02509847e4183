"""Segment plans and cost estimates of the `openai-videos` kind. Pure: polars.

The vectorised expressions price a whole catalog at once for the planner; the list functions give
one item's segments to the provider. Tests hold the two to the same numbers.
"""

from __future__ import annotations

import math

import polars as pl

from vidbatch.pricing import EPS as _EPS
from vidbatch.pricing import pick as _pick
from vidbatch.pricing import raw_seconds
from vidbatch.providers.openai_video_settings import OpenAIVideosSettings

__all__ = [
    "openai_videos_segments",
    "openai_videos_extension_segments",
    "openai_videos_size",
    "openai_videos_options",
    "openai_videos_estimate_usd",
]


# ---- one item at a time (the provider) --------------------------------------------------------


def _smallest_at_least(value: float, options: list[int]) -> int:
    """The shortest option that covers `value` (callers ask only for what the longest covers)."""
    return min(o for o in options if o + _EPS >= value)


def openai_videos_segments(seconds: float, route: OpenAIVideosSettings) -> list[int]:
    """Billed seconds of each call that covers `seconds`: a clip, then extensions or more clips."""
    longest = max(route.clip_seconds)
    if seconds <= longest + _EPS:
        return [_smallest_at_least(seconds, route.clip_seconds)]
    rest = seconds - longest
    step = longest if route.long_clips == "shots" else max(route.extension_seconds)
    pieces = route.clip_seconds if route.long_clips == "shots" else route.extension_seconds
    full = math.floor(rest / step + _EPS)
    tail = rest - full * step
    segments = [longest] + [step] * full
    if tail > _EPS:
        segments.append(_smallest_at_least(tail, pieces))
    return segments


def openai_videos_extension_segments(extend_s: float, route: OpenAIVideosSettings) -> list[int]:
    """Billed seconds of the extension calls that add `extend_s` to a clip."""
    step = max(route.extension_seconds)
    full = math.floor(extend_s / step + _EPS)
    tail = extend_s - full * step
    return [step] * full + ([_smallest_at_least(tail, route.extension_seconds)] if tail > _EPS else [])


def openai_videos_size(aspect: str) -> str:
    """The Videos API size for an aspect (the route's smallest size; it has no 480p)."""
    return "1280x720" if aspect == "16:9" else "720x1280"


# ---- whole catalog (planner) ----------------------------------------------------------------


def _smallest_at_least_expr(value: pl.Expr, options: list[int]) -> pl.Expr:
    expr = pl.lit(None, dtype=pl.Float64)
    for option in sorted(options, reverse=True):
        expr = pl.when(value <= option + _EPS).then(pl.lit(float(option))).otherwise(expr)
    return expr


def openai_videos_options(route: OpenAIVideosSettings, name: str) -> list[pl.Expr]:
    """Columns {name}_model, {name}_size, {name}_billed_s, {name}_cost for a catalog (null where it
    cannot serve): the `openai-videos` kind's prices for the planner."""
    model = _pick(route.model_by_realism, pl.col("realism"), pl.String)
    size = pl.when(pl.col("aspect") == "16:9").then(pl.lit("1280x720")).otherwise(pl.lit("720x1280"))
    prices = {f"{m}|{s}": p for m, by_size in route.price_usd_per_s.items() for s, p in by_size.items()}
    price = _pick(prices, pl.concat_str([model, size], separator="|"), pl.Float64)
    longest = max(route.clip_seconds)
    remix = pl.col("remix_of").is_not_null()
    # A remix bills its source video's length; in "shots" mode a long source is several videos.
    raw = pl.when(remix).then(pl.col("remix_source_s")).otherwise(raw_seconds())
    if route.long_clips == "shots":
        price = pl.when(remix & (raw > longest + _EPS)).then(None).otherwise(price)
    step = longest if route.long_clips == "shots" else max(route.extension_seconds)
    pieces = route.clip_seconds if route.long_clips == "shots" else route.extension_seconds
    rest = raw - longest
    full = (rest / step + _EPS).floor()
    tail = rest - full * step
    tail_billed = pl.when(tail > _EPS).then(_smallest_at_least_expr(tail, pieces)).otherwise(0.0)
    billed = (
        pl.when(raw <= longest + _EPS)
        .then(_smallest_at_least_expr(raw, route.clip_seconds))
        .otherwise(longest + full * step + tail_billed)
    )
    billed = billed + _extension_billed_s(route)
    return [
        model.alias(f"{name}_model"),
        size.alias(f"{name}_size"),
        billed.alias(f"{name}_billed_s"),
        (billed * price).alias(f"{name}_cost"),
    ]


def _extension_billed_s(route: OpenAIVideosSettings) -> pl.Expr:
    extend = pl.col("extend_s").fill_null(0.0)
    step = max(route.extension_seconds)
    full = (extend / step + _EPS).floor()
    tail = extend - full * step
    tail_billed = pl.when(tail > _EPS).then(_smallest_at_least_expr(tail, route.extension_seconds)).otherwise(0.0)
    return full * step + tail_billed


def openai_videos_estimate_usd(
    route: OpenAIVideosSettings, model: str, size: str, seconds: float, extend_s: float = 0.0
) -> float:
    """One item's closed-route estimate: billed seconds of every call times the model's price."""
    billed = sum(openai_videos_segments(seconds, route))
    if extend_s > 0:
        billed += sum(openai_videos_extension_segments(extend_s, route))
    return billed * route.price_usd_per_s[model][size]
