"""Closed-route throughput: N clips through the catalog flow against the loopback Videos API with
job latency L and C jobs in flight (the route's `concurrency`, shared by every run on the ledger).

The ideal is ceil(N/C) * L. Reported per scenario: the generation span (first reservation to last
settlement, from the ledger), the flow's wall time (which adds trimming and storing 720p clips),
the most jobs the endpoint had in flight at once (its own count: never above C), the 429s it sent,
and whether every item was paid exactly once.
Scenarios: clean; 30 % of submits answered 429 (Retry-After 0.5 s); an account that allows only
C jobs while the policy asks for 2C (a misconfiguration: a 429 storm); two runs at once, each
in its own process with half the clips, sharing the route through one ledger; and, as the
baseline, the clean run with `global_limits = false` (the run's own limit only).
With `--before REV`, the clean scenario also runs on the code of git revision REV (built into a
folder by bench/scale.py's build_revision), in the same run: span before and after.
Run: .venv/bin/python bench/closed_route.py [N] [C] [L] [--before REV] [--only clean,429,storm,two-runs,baseline]
(the test command runs 2 1 0.2)
"""

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

import polars as pl  # noqa: E402

from vidbatch.flows.produce_catalog import produce_catalog  # noqa: E402
from vidbatch.ledger import SPENT  # noqa: E402
from vidbatch.ledger_store import open_ledger  # noqa: E402
from vidbatch.policy import load_policy  # noqa: E402
from vidbatch.in_process import InProcess  # noqa: E402
from vidbatch.providers.openai_video import OpenAIVideoProvider, make_client  # noqa: E402
from vidbatch.storage import open_root  # noqa: E402
from vidbatch.sandbox import Faults, VideosSandbox  # noqa: E402

HERE = Path(__file__).resolve().parent
KEY_ENV = "VIDBATCH_BENCH_SANDBOX_KEY"  # the sandbox's key, to a child run (never on its command line)


def policy_file(path: Path, concurrency: int, global_limits: bool = True) -> Path:
    text = (HERE.parent / "catalogs" / "demo-policy.toml").read_text()
    text = text.replace("night_usd = 5.0", "night_usd = 1000.0").replace("campaign_usd = 3.0", "campaign_usd = 1000.0")
    marker = "[routes.sora]\n"
    if marker not in text:
        raise SystemExit(f"the demo policy has no {marker!r} section to tune")
    text = text.replace(marker, marker + f"concurrency = {concurrency}\nsubmits_per_minute = 600\n"
                                         f"global_limits = {str(global_limits).lower()}\n")
    # every item on the closed route: the other routes are left out of the run
    path.write_text(re.sub(r"^prefer = .*$", 'prefer = { low = ["sora"], medium = ["sora"], high = ["sora"] }', text,
                           count=1, flags=re.M))
    return path


def catalog(path: Path, ids: range) -> Path:
    pl.DataFrame([{"item_id": f"s{i}", "campaign": "bench", "prompt": f"shot {i}", "duration_s": 4.0, "aspect": "16:9",
                   "realism": "high"} for i in ids]).write_parquet(path)
    return path


def produce(catalog_path: Path, out: Path, policy: Path, base_url: str, api_key: str) -> dict:
    """One run of the flow, in this process, on the loopback endpoint."""
    def closed(pol):
        return OpenAIVideoProvider(pol.routes["sora"], client=make_client(pol.routes["sora"], base_url=base_url,
                                                                  api_key=api_key), route_id="sora")

    hands = InProcess(providers={"sora": closed, "wan": None, "wan-hosted": None})
    return produce_catalog(str(catalog_path), out=str(out), policy_path=str(policy), in_process=hands)


def scenario(name: str, n: int, c: int, latency: float, faults: Faults, policy_concurrency: int,
             global_limits: bool = True, runs: int = 1, code: dict | None = None) -> float:
    """Prints one row; returns the span. `runs` > 1: that many runs at once, each in its own
    process with its share of the clips; `code`: the environment of an older revision to run."""
    scratch = Path(tempfile.mkdtemp())
    policy = policy_file(scratch / "policy.toml", policy_concurrency, global_limits)
    out = scratch / "out"
    with VideosSandbox(latency_s=latency, poll_after_ms=250, faults=faults) as box:
        box.render(type("J", (), {"size": "1280x720", "seconds": 4})())  # pre-render the shared MP4
        t0 = time.perf_counter()
        if runs == 1 and code is None:
            summaries = [produce(catalog(scratch / "catalog.parquet", range(n)), out, policy, box.base_url,
                                 box.api_key)]
        else:
            shares = [range(k, n, runs) for k in range(runs)]
            children = [subprocess.Popen(
                [sys.executable, __file__, "--child", str(catalog(scratch / f"catalog-{k}.parquet", share)), str(out),
                 str(policy), box.base_url], env={**os.environ, **(code or {}), KEY_ENV: box.api_key},
                cwd=(code or {}).get("VIDBATCH_HOME", os.getcwd()), stdout=subprocess.PIPE, text=True)
                for k, share in enumerate(shares)]
            summaries = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
        wall = time.perf_counter() - t0
        ledger = open_ledger(open_root(str(out))).frame()
        failures = [s["error"] for s in summaries if s.get("error")]
        starts = ledger.filter(pl.col("status") == "reserved").group_by("run_id").agg(pl.col("created_at").min())
        offset = (starts["created_at"].max() - starts["created_at"].min()).total_seconds()
        span = (ledger.filter(pl.col("status") == "settled")["created_at"].max()
                - ledger.filter(pl.col("status") == "reserved")["created_at"].min()).total_seconds()
        n429 = sum(status == 429 for _, _, status in box.requests)
        creates = sum(j.kind == "create" for j in box.jobs.values())
        paid = ledger.filter(pl.col("status").is_in(SPENT))["cost_usd"].sum()
        finished = ledger.filter(pl.col("status") == "delivered")["item_id"].n_unique()
        ok = creates == finished and abs(paid - box.total_billed_usd()) < 1e-9
        peak = box.book.peak_in_flight()  # the sandbox runs here, on this tree's code, whatever the runs' code
    ideal = math.ceil(n / c) * latency
    print(f"{name:<40} span {span:6.1f} s  ideal {ideal:5.1f} s  ratio {span / ideal:4.2f}  "
          f"flow wall {wall:6.1f} s  peak in flight {peak:3d}  429s {n429:4d}  finished {finished}/{n}  "
          f"jobs {creates}  ledger==bill {ok}", flush=True)
    if runs > 1:
        print(f"    the runs' first reservations {offset:.1f} s apart (each process starts its own Prefect API)",
              flush=True)
    for failure in failures:
        print(f"    a run failed: {failure}", flush=True)
    return span


def child(catalog_path: str, out: str, policy: str, base_url: str) -> None:
    try:
        summary = produce(Path(catalog_path), Path(out), Path(policy), base_url, os.environ[KEY_ENV])
    except Exception as err:  # a failed run raises at its end: what it finished is in the ledger
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
        return
    print(json.dumps({"status_counts": summary["status_counts"]}), flush=True)


def old_code(rev: str) -> dict:
    """The environment that runs this script on revision `rev`'s vidbatch."""
    sys.path.insert(0, str(HERE))
    from scale import build_revision

    home, site = build_revision(rev, Path(tempfile.mkdtemp()))
    return {"PYTHONPATH": str(site), "VIDBATCH_HOME": str(home)}


SCENARIOS = ("clean", "429", "storm", "two-runs", "baseline")


def main(n: int, c: int, latency: float, before: str | None, only: tuple[str, ...] = SCENARIOS) -> None:
    load_policy(None)
    print(f"N={n} clips of 4 s, C={c} jobs in flight, L={latency} s per job; ideal ceil(N/C)*L", flush=True)
    if "clean" in only:
        span = scenario("clean", n, c, latency, Faults(), c)
        if before:
            old = scenario(f"clean, the code of {before}", n, c, latency, Faults(), c, code=old_code(before))
            print(f"clean span: {old / span:.2f}x faster than {before} in the same run", flush=True)
    if "429" in only:
        scenario("30% of submits answer 429", n, c, latency, Faults(rate_limit_p=0.3, retry_after_s=0.5), c)
    if "storm" in only:
        scenario(f"account allows {c}, policy asks {2 * c}", n, c, latency,
                 Faults(max_in_flight=c, retry_after_s=0.5), 2 * c)
    if "two-runs" in only:
        scenario("two runs at once (processes), one ledger", n, c, latency, Faults(), c, runs=2)
    if "baseline" in only:
        scenario("baseline: clean, global_limits=false", n, c, latency, Faults(), c, global_limits=False)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        child(*args[1:5])
        sys.exit(0)
    rev = args.pop(args.index("--before") + 1) if "--before" in args else None
    only = tuple(args.pop(args.index("--only") + 1).split(",")) if "--only" in args else SCENARIOS
    args = [a for a in args if a not in ("--before", "--only")]
    main(int(args[0]) if args else 40, int(args[1]) if len(args) > 1 else 8, float(args[2]) if len(args) > 2 else 4.0,
         rev, only)
