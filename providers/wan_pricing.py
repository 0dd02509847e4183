"""Shot plans and cost estimates of the `wan-diffusers` kind. Pure: polars.

The vectorised expressions price a whole catalog at once for the planner; the list functions give
one item's shot plan to the provider. Tests hold the two to the same numbers.
"""

from __future__ import annotations

import math

import polars as pl

from vidbatch.pricing import EPS as _EPS
from vidbatch.pricing import pick as _pick
from vidbatch.pricing import raw_seconds
from vidbatch.providers.wan_fit import Placement, place
from vidbatch.providers.wan_settings import WanRoute
from vidbatch.route_settings import Resolution

__all__ = ["wan_shot_frames", "wan_extension_frames", "wan_size", "wan_options", "wan_estimate_usd"]


# ---- one item at a time (the provider) --------------------------------------------------------


def wan_shot_frames(seconds: float, fps: int, max_frames: int) -> list[int]:
    """Frame counts of the shots that cover `seconds`: each 4k+1 (the Wan VAE's rule), <= max_frames."""
    needed = max(1, math.ceil(seconds * fps - _EPS))
    shots = math.ceil(needed / max_frames)
    per_shot = math.ceil(needed / shots)
    per_shot = per_shot + (-(per_shot - 1)) % 4  # round up to 4k+1
    return [min(per_shot, max_frames)] * shots


def wan_extension_frames(extend_s: float, fps: int, max_frames: int) -> list[int]:
    """Frame counts of the image-to-video shots that extend a clip by `extend_s`: equal shots,
    each starting on the previous last frame (dropped afterwards), so each renders one frame more
    than it adds, rounded up to 4k+1."""
    new_frames = max(1, math.ceil(extend_s * fps - _EPS))
    shots = math.ceil(new_frames / (max_frames - 1))
    per_shot = math.ceil(new_frames / shots) + 1
    return [per_shot + (-(per_shot - 1)) % 4] * shots


def wan_size(route: WanRoute, model: str, resolution: Resolution, aspect: str) -> tuple[int, int]:
    """(width, height) the Wan model renders for this resolution and aspect."""
    w, h = route.models[model].sizes[resolution]
    return (w, h) if aspect == "16:9" else (h, w)


# ---- whole catalog (planner) ----------------------------------------------------------------


def _placements(route: WanRoute) -> dict[str, Placement | str]:
    """ "model|resolution|profile" -> where one full shot renders and what it costs (the fit rule,
    providers/wan_fit.py), or why it fits no pool."""
    return {
        f"{name}|{res}|{profile}": place(route, name, res, profile)
        for name, m in route.models.items()
        for res in m.gpu_s_per_shot
        for profile in route.profiles
    }


def _placed(table: dict[str, Placement | str], value) -> dict:
    return {key: value(p) for key, p in table.items() if not isinstance(p, str)}


def _profile(route: WanRoute) -> pl.Expr:
    """Each item's speed profile: its campaign's, else the route's."""
    return pl.col("campaign").replace_strict(route.campaign_profiles, default=route.profile, return_dtype=pl.String)


def _per_model(route: WanRoute, model: pl.Expr, value) -> pl.Expr:
    """Each row's `value(model name)` for its model (null without one): frame rates, shot lengths."""
    return _pick({name: value(name) for name in route.models}, model, pl.Int64)


def wan_options(route: WanRoute, name: str) -> list[pl.Expr]:
    """Columns {name}_model, {name}_size, {name}_shots, {name}_gpu_s, {name}_cost for a catalog
    (null where this Wan route cannot serve): the `wan-diffusers` kind's prices for the planner.
    Each model renders at its own frame rate and shot length (Wan 2.2 TI2V-5B: 24 fps, 121 frames)."""
    image = pl.col("image_uri").is_not_null()
    model = (
        pl.when(image)
        .then(_pick(route.i2v_model, pl.col("resolution"), pl.String))
        .otherwise(_pick(route.t2v_model, pl.col("resolution"), pl.String))
    )
    placements = _placements(route)
    size_table = {f"{name}|{res}": f"{w}x{h}" for name, m in route.models.items() for res, (w, h) in m.sizes.items()}
    key = pl.concat_str([model, pl.col("resolution")], separator="|")
    gpu_key = pl.concat_str([model, pl.col("resolution"), _profile(route)], separator="|")
    max_frames = _per_model(route, model, route.shot_frames_of)
    needed = (raw_seconds() * _per_model(route, model, route.fps_of) - _EPS).ceil().clip(lower_bound=1)
    shots = (needed / max_frames).ceil()
    per_shot = (needed / shots).ceil()
    per_shot = per_shot + ((1 - per_shot) % 4)
    pool = _pick(_placed(placements, lambda p: p.pool), gpu_key, pl.String)
    gpu_s = shots * _pick(_placed(placements, lambda p: p.gpu_s_per_shot), gpu_key, pl.Float64) * per_shot / max_frames
    gpu_s = gpu_s + _wan_extension_gpu_s(route, model, pool)
    usd_per_hour = _pick(_placed(placements, lambda p: p.usd_per_hour), gpu_key, pl.Float64)
    unfit = {key: why for key, why in placements.items() if isinstance(why, str)}
    landscape = _pick(size_table, key, pl.String)
    portrait = landscape.str.split("x").list.reverse().list.join("x")
    return [
        model.alias(f"{name}_model"),
        pl.when(pl.col("aspect") == "16:9").then(landscape).otherwise(portrait).alias(f"{name}_size"),
        shots.cast(pl.Int64).alias(f"{name}_shots"),
        gpu_s.alias(f"{name}_gpu_s"),
        (gpu_s * usd_per_hour / 3600).alias(f"{name}_cost"),
        (pool if route.pools else pl.lit(None, pl.String)).alias(f"{name}_pool"),  # no pools: the route's one card
        _pick(_placed(placements, Placement.note), gpu_key, pl.String).alias(f"{name}_note"),
        pl.when(pool.is_null() & model.is_not_null())
        .then(_pick(unfit, gpu_key, pl.String))
        .when(pool.is_not_null() & gpu_s.is_null() & (pl.col("extend_s").fill_null(0.0) > 0))
        .then(pl.format("its extension's model does not fit pool {} (or renders another frame rate)", pool))
        .alias(f"{name}_unable"),
    ]


def _wan_extension_gpu_s(route: WanRoute, clip_model: pl.Expr, pool: pl.Expr) -> pl.Expr:
    """GPU seconds of an item's extension (0 without one; null when no i2v model can make it on
    the clip's pool, or the one there is renders another frame rate than the clip's model).

    Shots of up to the i2v model's shot length, each re-rendering the previous last frame."""
    extend = pl.col("extend_s").fill_null(0.0)
    model = _pick(route.i2v_model, pl.col("resolution"), pl.String)
    on_pool = {
        f"{name}|{res}|{profile}|{p}": placed.gpu_s_per_shot
        for name in set(route.i2v_model.values())
        for res in route.models[name].gpu_s_per_shot
        for profile in route.profiles
        for p in route.pool_table()
        if not isinstance(placed := place(route, name, res, profile, p), str)
    }
    per_full_shot = _pick(
        on_pool, pl.concat_str([model, pl.col("resolution"), _profile(route), pool], separator="|"), pl.Float64
    )
    max_frames = _per_model(route, model, route.shot_frames_of)
    fps = _per_model(route, clip_model, route.fps_of)
    new_frames = (extend * fps - _EPS).ceil().clip(lower_bound=1)
    shots = (new_frames / (max_frames - 1)).ceil()
    per_shot = (new_frames / shots).ceil() + 1
    per_shot = per_shot + ((1 - per_shot) % 4)
    same_rate = _per_model(route, model, route.fps_of) == fps
    return (
        pl.when(extend <= 0)
        .then(0.0)
        .when(same_rate)
        .then(shots * per_full_shot * per_shot / max_frames)
        .otherwise(None)
    )


def wan_estimate_usd(
    route: WanRoute,
    model: str,
    resolution: Resolution,
    seconds: float,
    extend_s: float = 0.0,
    profile: str = "stock",
    pool: str | None = None,
) -> float:
    """One item's Wan estimate: GPU seconds per full shot under its profile, on its pool (given,
    else the cheapest where it fits), scaled by each shot's frames (at the model's frame rate and
    shot length); an extension is priced on the route's image-to-video model on the same pool (inf
    when there is none, it does not fit there, it renders another frame rate, or nothing fits)."""
    placed = place(route, model, resolution, profile, pool)
    if isinstance(placed, str):
        return float("inf")
    fps, max_frames = route.fps_of(model), route.shot_frames_of(model)
    shots = wan_shot_frames(seconds, fps, max_frames)
    gpu_s = placed.gpu_s_per_shot * sum(shots) / max_frames
    if extend_s > 0:
        i2v = route.i2v_model.get(resolution)
        extender = place(route, i2v, resolution, profile, placed.pool) if i2v is not None else "none"
        if i2v is None or isinstance(extender, str) or route.fps_of(i2v) != fps:
            return float("inf")
        frames = wan_extension_frames(extend_s, fps, route.shot_frames_of(i2v))
        gpu_s += extender.gpu_s_per_shot * sum(frames) / route.shot_frames_of(i2v)
    return gpu_s * placed.usd_per_hour / 3600
