"""The planner over named routes against the two-route planner it replaced, in the same run.

Writes N synthetic catalog rows (bench/plan_throughput.py's generator) to Parquet, then in separate
processes plans them (validate excluded, best of 3):
  before   the planner of git revision REV (default b4479e3: two routes written in the code)
  now      this tree's planner on the same default policy (two routes, converted orders)
  three    this tree's planner on the three-route demo policy's orders, default prices and caps
and checks that `before` and `now` make the same decisions (route, status, estimate per item).
Run: .venv/bin/python bench/plan_routes.py [N] [--before REV]
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from plan_throughput import synthetic  # noqa: E402
from scale import build_revision  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLAN = """
import inspect, json, sys, time
import polars as pl
from vidbatch.catalog import validate_catalog
from vidbatch.planner import plan_catalog
from vidbatch.policy import default_policy, load_policy
policy = default_policy() if sys.argv[3] == "default" else load_policy(sys.argv[3])
if sys.argv[3] != "default":  # the demo's routes and orders, the default's prices and caps
    policy = policy.model_copy(update={"caps": default_policy().caps})
valid, _ = validate_catalog(pl.read_parquet(sys.argv[1]))
if "routes" in inspect.signature(plan_catalog).parameters:
    import vidbatch.providers as kinds
    from vidbatch.providers import priced_routes
    built = kinds.build_providers(policy) if hasattr(kinds, "build_providers") else kinds.registry.build(policy)
    args, kwargs = (priced_routes(policy, built),), {}
else:
    args, kwargs = (), {"unavailable": {}}
times = []
for _ in range(3):
    started = time.perf_counter()
    plan = plan_catalog(valid, policy, *args, **kwargs)
    times.append(time.perf_counter() - started)
if "route" not in plan.columns:  # a vidbatch from before the plan's `route` column said provider
    plan = plan.rename({"provider": "route"})
plan.select("item_id", "route", "status", "est_cost_usd").write_parquet(sys.argv[2])
print(json.dumps({"seconds": min(times), "routes": plan["route"].value_counts().sort("route").rows()}))
"""


def plan_with(site: Path | None, catalog: Path, out: Path, policy: str, cwd: Path) -> dict:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-c", PLAN, str(catalog), str(out), policy], capture_output=True,
                          text=True, env=env, cwd=cwd, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(n: int, before: str) -> None:
    import polars as pl

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = work / "catalog.parquet"
        synthetic(n).write_parquet(catalog)
        home, site = build_revision(before, work)
        old = plan_with(site, catalog, work / "before.parquet", "default", home)
        now = plan_with(None, catalog, work / "now.parquet", "default", work)
        three = plan_with(None, catalog, work / "three.parquet", str(REPO / "catalogs" / "demo-policy.toml"), work)
        a = pl.read_parquet(work / "before.parquet").sort("item_id")
        b = pl.read_parquet(work / "now.parquet").sort("item_id")
        same = a.equals(b.select(a.columns))
        print(f"rows {n:,}")
        print(f"before ({before}, two routes in code)  {old['seconds']:.2f} s   routes {old['routes']}")
        print(f"now (default policy, two routes)       {now['seconds']:.2f} s   {now['seconds'] / old['seconds']:.2f}x"
              f"   routes {now['routes']}")
        print(f"now (demo policy, three routes)        {three['seconds']:.2f} s   "
              f"{three['seconds'] / old['seconds']:.2f}x   routes {three['routes']}")
        print(f"same decisions before and now (route, status, estimate per item): {same}")


if __name__ == "__main__":
    args = sys.argv[1:]
    rev = args.pop(args.index("--before") + 1) if "--before" in args else "b4479e3"
    args = [a for a in args if a != "--before"]
    main(int(args[0]) if args else 1_000_000, rev)
