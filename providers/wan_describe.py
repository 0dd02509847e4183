"""What `vidbatch routes` and `vidbatch plan` show of a `wan-diffusers` route: its models, speed
and memory profiles, pools, the fit table (which model fits which card, held how), and the figures
reservations hold. Pure (no polars, no torch)."""

from __future__ import annotations

from vidbatch.providers.wan_fit import fit_table, place
from vidbatch.providers.wan_settings import WanRoute

__all__ = ["describe"]


def describe(route: WanRoute) -> dict:
    return {
        "models": {"t2v": dict(route.t2v_model), "i2v": dict(route.i2v_model)},
        "profiles": {
            name: {
                "mean_abs_diff": p.mean_abs_diff,
                "campaigns": sorted(c for c, chosen in route.campaign_profiles.items() if chosen == name),
            }
            for name, p in route.profiles.items()
        },
        "default_profile": route.profile,
        "loras": {name: {"source": lora.source, "scale": lora.scale} for name, lora in route.loras.items()},
        "prices": {
            **(
                {"gpu_usd_per_hour": route.gpu_usd_per_hour}
                if not route.pools
                else {"pools": {name: pool.describe() for name, pool in route.pools.items()}}
            ),
            "gpu_s_per_shot": {name: dict(m.gpu_s_per_shot) for name, m in route.models.items()},
        },
        "memory": {
            name: {
                "mean_abs_diff": m.mean_abs_diff,
                "levers": [
                    lever
                    for lever, on in (
                        (f"{m.offload} offload", m.offload != "none"),
                        ("text encoder on CPU", m.text_encoder_on_cpu),
                        ("fp8 weights", m.fp8),
                        ("VAE tiling", m.vae_tiling),
                    )
                    if on
                ]
                or ["all on the GPU"],
            }
            for name, m in route.memory_profiles.items()
        },
        "fit": fit_table(route) if route.pools else [],
        "figures": _figures(route),
        "where": "the GPU work pool" if route.workers == "pool" else "this process",
    }


def _figures(route: WanRoute) -> dict[str, dict]:
    """price key -> the GPU seconds per shot a reservation holds and where that figure comes from,
    for the models the route routes to and the profiles its campaigns use, where each is placed."""
    models = sorted(set(route.t2v_model.values()) | set(route.i2v_model.values()))
    profiles = sorted({route.profile, *route.campaign_profiles.values()})
    out = {}
    for m in models:
        for res in route.models[m].sizes:
            for p in profiles:
                placed = place(route, m, res, p)
                if isinstance(placed, str):
                    continue
                out[placed.price_key] = {
                    "gpu_s_per_shot": round(placed.gpu_s_per_shot, 4),
                    "source": placed.source,
                }
    return out
