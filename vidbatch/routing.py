"""Which routes may make each item, in the policy's order of preference. Pure: polars only.

A route is known here only by its name and what it can do (`RouteOffer`: longest footage, image
input, remix, extension, resolutions, availability); no route name is written in this module. The
policy says the order (`Preferences`): per realism level, and another order for items longer than
`long_after_s` (one coherent shot). `candidates` gives each item the ordered routes that can make
it: the first is where it goes if the caps allow, the rest are its fallbacks in order; the routes
it cannot use carry the reason. Pricing and the caps come after (the planner).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

__all__ = ["RouteOffer", "Preferences", "candidates"]


@dataclass(frozen=True)
class RouteOffer:
    """What one route can do for an item (from its provider's capabilities and its settings)."""

    name: str
    max_footage_s: float | None = None  # longest footage one item may get; None: no limit
    image_input: bool = False
    remix: bool = False
    extend: bool = False
    resolutions: tuple[str, ...] = ("480p", "720p")
    unavailable: str | None = None  # why it cannot serve this run; None: it can
    loras: tuple[str, ...] = ()  # LoRAs it can apply (an item asking for one needs it)


@dataclass(frozen=True)
class Preferences:
    """Routes in order of preference per realism level, and for items longer than `long_after_s`."""

    by_realism: Mapping[str, Sequence[str]]
    long_after_s: float | None = None
    long: Mapping[str, Sequence[str]] = field(default_factory=dict)  # realism -> order for long items


def _offers_frame(offers: Iterable[RouteOffer]) -> pl.DataFrame:
    rows = [
        {
            "route": o.name,
            "max_s": o.max_footage_s,
            "image_ok": o.image_input,
            "remix_ok": o.remix,
            "extend_ok": o.extend,
            "resolutions": list(o.resolutions),
            "gone": o.unavailable,
            "loras_ok": list(o.loras),
        }
        for o in offers
    ]
    return pl.DataFrame(
        rows,
        schema={
            "route": pl.String,
            "max_s": pl.Float64,
            "image_ok": pl.Boolean,
            "remix_ok": pl.Boolean,
            "extend_ok": pl.Boolean,
            "resolutions": pl.List(pl.String),
            "gone": pl.String,
            "loras_ok": pl.List(pl.String),
        },
    )


def _orders(prefs: Preferences) -> pl.DataFrame:
    rows = [
        {"realism": realism, "long": False, "rank": rank, "route": route}
        for realism, order in prefs.by_realism.items()
        for rank, route in enumerate(order)
    ]
    rows += [
        {"realism": realism, "long": True, "rank": rank, "route": route}
        for realism, order in (prefs.long or prefs.by_realism).items()
        for rank, route in enumerate(order)
    ]
    return pl.DataFrame(rows, schema={"realism": pl.String, "long": pl.Boolean, "rank": pl.Int64, "route": pl.String})


def candidates(items: pl.DataFrame, offers: Iterable[RouteOffer], prefs: Preferences) -> pl.DataFrame:
    """`items` (row, realism, seconds, has_image, is_remix, extend_s, resolution, forced: a route the
    catalog names or null; optionally lora: the LoRA it needs or null) plus `routes` (list: the
    routes that can make it, best first),
    `route_ranks` (each one's place in the order), `preferred` (the first route of its order,
    able or not) and `skipped` (every route of its order that cannot make it, with its place:
    list of {rank, why})."""
    offered = _offers_frame(offers)
    if "lora" not in items.columns:
        items = items.with_columns(pl.lit(None, dtype=pl.String).alias("lora"))
    long = pl.lit(False) if prefs.long_after_s is None else pl.col("seconds") > prefs.long_after_s
    keyed = items.select("row", "realism", "forced", long.alias("long"))
    ranked = pl.concat(
        [
            keyed.filter(pl.col("forced").is_null()).join(_orders(prefs), on=["realism", "long"], how="inner"),
            keyed.filter(pl.col("forced").is_not_null()).select(
                "row", pl.lit(0, pl.Int64).alias("rank"), pl.col("forced").alias("route")
            ),
        ],
        how="diagonal_relaxed",
    ).select("row", "rank", "route")
    checked = (
        ranked.join(items.drop("forced"), on="row", how="left")
        .join(offered, on="route", how="left")
        .with_columns(_why_not().alias("why_not"))
        .sort("row", "rank")
    )
    grouped = checked.group_by("row", maintain_order=True).agg(
        pl.col("route").filter(pl.col("why_not").is_null()).alias("routes"),
        pl.col("rank").filter(pl.col("why_not").is_null()).alias("route_ranks"),
        pl.col("route").first().alias("preferred"),
        pl.struct("rank", pl.format("{} {}", pl.col("route"), pl.col("why_not")).alias("why"))
        .filter(pl.col("why_not").is_not_null())
        .alias("skipped"),
    )
    return items.join(grouped, on="row", how="left", maintain_order="left").with_columns(
        pl.col("routes").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col("route_ranks").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
    )


def _why_not(footage: pl.Expr = pl.col("seconds") + pl.col("extend_s")) -> pl.Expr:
    """Why a route cannot make an item (null when it can), checked in a fixed order."""
    return (
        pl.when(pl.col("image_ok").is_null())
        .then(pl.lit("is not a configured route"))
        .when(pl.col("gone").is_not_null())
        .then(pl.format("is unavailable ({})", pl.col("gone")))
        .when(pl.col("is_remix") & ~pl.col("remix_ok"))
        .then(pl.lit("cannot remix"))
        .when(pl.col("has_image") & ~pl.col("image_ok"))
        .then(pl.lit("takes no image input"))
        .when((pl.col("extend_s") > 0) & ~pl.col("extend_ok"))
        .then(pl.lit("cannot extend a clip"))
        .when(pl.col("lora").is_not_null() & ~pl.col("loras_ok").list.contains(pl.col("lora")))
        .then(pl.format("has no LoRA {}", pl.col("lora")))
        .when(~pl.col("resolutions").list.contains(pl.col("resolution")))
        .then(pl.format("has no {} model", pl.col("resolution")))
        .when(pl.col("max_s").is_not_null() & (footage > pl.col("max_s") + 1e-9))
        .then(pl.format("makes at most {} s, the item needs {} s", pl.col("max_s"), footage.round(2)))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
