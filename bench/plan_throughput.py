"""Planning throughput: validate + plan N synthetic catalog rows (default 1,000,000).

Baseline in the same run: the same routing, pricing and cap allocation written as a plain per-row
Python loop over the project's own scalar pricing functions (what a non-vectorised planner costs).
Policy: catalogs/videos-api-policy.toml (production Wan and a Videos-API closed route). Then the
same plan with its Wan route on two GPU pools (a 24 GiB card beside its H100, the default policy's
memory needs): what the fit rule adds, as a ratio to the one-pool plan of the same run.
Run: .venv/bin/python bench/plan_throughput.py [N]
"""

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from vidbatch.catalog import validate_catalog
from vidbatch.planner import plan_catalog
from vidbatch.policy import load_policy
from vidbatch.providers import build_providers, priced_routes
from vidbatch.providers.openai_video_pricing import openai_videos_estimate_usd, openai_videos_size
from vidbatch.providers.wan_pricing import wan_estimate_usd


def per_row_baseline(valid: pl.DataFrame, policy) -> int:
    """Route, price and allocate row by row (no fallback pass): a lower bound for a loop planner."""
    caps, prefs = policy.caps, policy.preferences()
    spent_night, spent = 0.0, {}
    planned = 0
    rows = valid.sort(["priority", "row"], descending=[True, False]).select(
        "campaign", "duration_s", "trim_start_s", "aspect", "realism", "resolution").iter_rows()
    for campaign, duration, trim, aspect, realism, resolution in rows:
        seconds = trim + duration
        order = (prefs.long if seconds > prefs.long_after_s else prefs.by_realism)[realism]
        if order[0] == "sora":
            model = policy.routes["sora"].model_by_realism[realism]
            cost = openai_videos_estimate_usd(policy.routes["sora"], model, openai_videos_size(aspect), seconds)
        else:
            wan = policy.routes["wan"]
            cost = wan_estimate_usd(wan, wan.t2v_model[resolution], resolution, seconds)
        used = spent.get(campaign, 0.0)
        if (cost <= caps.item_usd and used + cost <= caps.for_campaign(campaign)
                and spent_night + cost <= caps.night_usd):
            spent[campaign] = used + cost
            spent_night += cost
            planned += 1
    return planned


def synthetic(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({
        "item_id": [f"item-{i}" for i in range(n)],
        "campaign": rng.choice([f"campaign-{c}" for c in range(50)], n),
        "prompt": rng.choice(["a cat on the beach", "a car in the city at night", "coffee in a kitchen"], n),
        "duration_s": rng.uniform(1, 20, n).round(1),
        "aspect": rng.choice(["16:9", "9:16"], n),
        "realism": rng.choice(["low", "medium", "high"], n),
        "priority": rng.integers(0, 5, n),
    })


def main(n: int) -> None:
    frame = synthetic(n)
    policy = load_policy(Path(__file__).resolve().parents[1] / "catalogs" / "videos-api-policy.toml")
    t0 = time.perf_counter()
    valid, rejects = validate_catalog(frame)
    t1 = time.perf_counter()
    plan = plan_catalog(valid, policy, priced_routes(policy, build_providers(policy)))
    t2 = time.perf_counter()
    t3 = time.perf_counter()
    per_row_baseline(valid, policy)
    t4 = time.perf_counter()
    print(f"rows                     {n:,}")
    print(f"validate                 {t1 - t0:.3f} s  ({n / (t1 - t0):,.0f} rows/s)")
    print(f"plan (route+price+caps)  {t2 - t1:.3f} s  ({n / (t2 - t1):,.0f} rows/s)")
    print(f"validate+plan            {t2 - t0:.3f} s")
    print(f"baseline per-row loop    {t4 - t3:.3f} s;  vectorised plan is {(t4 - t3) / (t2 - t1):.1f}x faster")
    print(f"planned {plan.filter(pl.col('status') == 'planned').height:,}, deferred "
          f"{plan.filter(pl.col('status') == 'deferred').height:,}, rejected {rejects.height}")
    pooled = two_pools(policy)
    t5 = time.perf_counter()
    placed = plan_catalog(valid, pooled, priced_routes(pooled, build_providers(pooled)))
    t6 = time.perf_counter()
    by_pool = placed.filter(pl.col("status") == "planned").group_by("pool").len().sort("pool")
    print(f"plan on two GPU pools    {t6 - t5:.3f} s  ({(t6 - t5) / (t2 - t1):.2f}x the one-pool plan); "
          "planned by pool: " + ", ".join(f"{p or '-'} {k:,}" for p, k in by_pool.iter_rows()))


def two_pools(policy):
    """`policy` with its Wan route on an RTX 4090 pool beside its H100 one, the models' memory needs
    taken from the default policy (estimates)."""
    default = load_policy(None).routes["wan"]
    wan = policy.routes["wan"].model_dump()
    for name, model in wan["models"].items():
        model["memory"] = default.models[name].model_dump()["memory"]
    wan.update(gpu_usd_per_hour=None, workers="pool", pools={
        "rtx4090": {"gpu": "RTX 4090", "memory_gib": 24, "usd_per_hour": 0.45, "time_x": 4.5},
        "h100": {"gpu": "H100", "memory_gib": 80, "usd_per_hour": 2.50}})
    routes = {**policy.routes, "wan": type(policy.routes["wan"]).model_validate(wan)}
    return policy.model_copy(update={"routes": routes})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
