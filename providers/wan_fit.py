"""The fit rule of the `wan-diffusers` kind: on which pool's card, held in memory how, a Wan model
renders a resolution, and at what price. Pure (no polars, no torch).

A memory profile fits a pool when the model states it (`models.NAME.memory`) and its peak at that
resolution plus the pool's headroom is within the card's memory. On each pool the fastest fitting
profile is used; among pools, the cheapest per shot (GPU seconds on that card with that profile,
the policy's figure or the ledger's measurement of that GPU type, whichever is more, times the
card's price), ties to the pool stated first. A model that fits no pool is refused with the
reason, at plan time, before anything is spent. A route that states no pools renders every model
whole on one card of an unstated type, as before pools existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidbatch.providers.wan_pools import MemoryNeed
from vidbatch.providers.wan_settings import WanRoute
from vidbatch.route_settings import Resolution

__all__ = ["Placement", "place", "fitting", "fit_table"]


@dataclass(frozen=True)
class Placement:
    """Where one model renders one resolution: the pool, the memory profile, and the price."""

    model: str
    resolution: str
    pool: str
    gpu: str
    memory: str  # memory profile name
    need_gib: float | None  # the stated peak (None: the pool states no memory)
    need_measured: bool
    time_x: float  # GPU time relative to whole on the card the figures are stated for
    gpu_s_per_shot: float  # what a reservation holds for one full shot here
    usd_per_hour: float
    price_key: str
    source: str  # where gpu_s_per_shot comes from

    @property
    def usd_per_shot(self) -> float:
        return self.gpu_s_per_shot * self.usd_per_hour / 3600

    def note(self) -> str | None:
        """One line for the plan: e.g. "on pool l4 (L4): group-offload, needs 11 GiB (stated, not
        measured), est. 2.1x whole's GPU time"; None where the route states no pools."""
        if self.need_gib is None:
            return None
        figure = "measured" if self.need_measured else "stated, not measured"
        return (
            f"on pool {self.pool} ({self.gpu}): {self.memory}, needs {self.need_gib:g} GiB ({figure}), "
            f"est. {self.time_x:.2g}x whole's GPU time"
        )


def fitting(route: WanRoute, model: str, resolution: Resolution, pool: str) -> list[tuple[str, MemoryNeed]]:
    """The memory profiles of `model` that fit one card of `pool` at `resolution`, fastest first
    (ties: the one stated first)."""
    card = route.pool_table()[pool]
    if card.usable_gib is None:
        return [("whole", MemoryNeed(gib={resolution: 1.0}))]  # no memory stated: whole, unchecked
    usable = card.usable_gib
    stated = [(name, need) for name, need in route.models[model].memory.items() if resolution in need.gib]
    fits = [(name, need) for name, need in stated if need.gib[resolution] <= usable]
    return sorted(fits, key=lambda item: item[1].time_x)


def _placement(route: WanRoute, model: str, resolution: Resolution, profile: str, pool: str) -> Placement | None:
    fits = fitting(route, model, resolution, pool)
    if not fits:
        return None
    memory, need = fits[0]
    card = route.pool_table()[pool]
    stated_pool = pool if route.pools else None
    return Placement(
        model=model,
        resolution=resolution,
        pool=pool,
        gpu=card.gpu,
        memory=memory,
        need_gib=need.gib[resolution] if card.memory_gib is not None else None,
        need_measured=need.measured,
        time_x=need.time_x * card.time_x if route.pools else 1.0,
        gpu_s_per_shot=route.gpu_s_per_shot(model, resolution, profile, stated_pool, memory),
        usd_per_hour=card.usd_per_hour,
        price_key=route.measured_key(model, resolution, profile, stated_pool, memory),
        source=route.price_source(model, resolution, profile, stated_pool, memory),
    )


def place(
    route: WanRoute, model: str, resolution: Resolution, profile: str, pool: str | None = None
) -> Placement | str:
    """Where `model` renders `resolution` under speed `profile`: on `pool` when given (a worker of
    that pool), else on the cheapest pool where it fits. A str: why it fits nowhere."""
    pools = [pool] if pool is not None else list(route.pool_table())
    if pool is not None and pool not in route.pool_table():
        return f"pool {pool!r} is not one of this route's pools ({', '.join(route.pool_table())})"
    found = [p for p in (_placement(route, model, resolution, profile, name) for name in pools) if p is not None]
    if found:
        return min(found, key=lambda p: p.usd_per_shot)  # min keeps the first of equals: the pool stated first
    return _why_not(route, model, resolution, pools)


def _why_not(route: WanRoute, model: str, resolution: Resolution, pools: list[str]) -> str:
    stated = {name: need.gib[resolution] for name, need in route.models[model].memory.items() if resolution in need.gib}
    cards = ", ".join(f"{name} {route.pool_table()[name].describe()}" for name in pools)
    if not stated:
        return (
            f"{model} {resolution} fits no GPU pool: it states no memory need at {resolution} "
            f"(models.{model}.memory) and every pool states its memory ({cards})"
        )
    least = min(stated, key=lambda name: stated[name])
    largest = max(pools, key=lambda name: route.pool_table()[name].usable_gib or 0.0)
    return (
        f"{model} {resolution} fits no GPU pool: the least it needs is {stated[least]:g} GiB ({least}); "
        f"the largest card leaves {route.pool_table()[largest].usable_gib:g} GiB after headroom ({cards})"
    )


def fit_table(route: WanRoute, profile: str | None = None) -> list[dict]:
    """For `vidbatch routes`: each model the route routes to, at each resolution, on each pool:
    the memory profile it would use there (or why none fits), and the price per full shot."""
    profile = profile or route.profile
    models = sorted(set(route.t2v_model.values()) | set(route.i2v_model.values()))
    rows = []
    for model in models:
        for resolution in route.models[model].sizes:
            chosen = place(route, model, resolution, profile)
            for pool in route.pool_table():
                here = place(route, model, resolution, profile, pool)
                rows.append(
                    {
                        "model": model,
                        "resolution": resolution,
                        "pool": pool,
                        "fits": not isinstance(here, str),
                        "memory": None if isinstance(here, str) else here.memory,
                        "need_gib": None if isinstance(here, str) else here.need_gib,
                        "usd_per_shot": None if isinstance(here, str) else round(here.usd_per_shot, 4),
                        "chosen": not isinstance(here, str) and not isinstance(chosen, str) and chosen.pool == pool,
                        "why_not": here if isinstance(here, str) else None,
                    }
                )
    return rows
