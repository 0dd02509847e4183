"""Closed-route throughput: N clips through the catalog flow against the loopback Videos API with
job latency L and C jobs in flight (closed.concurrency, a Prefect global concurrency limit).

The ideal is ceil(N/C) * L. Reported per scenario: the generation span (first reservation to last
settlement, from the ledger), the flow's wall time (which adds trimming and storing 720p clips),
the 429s the server sent, and whether every item was paid exactly once.
Scenarios: clean; 30 % of submits answered 429 (Retry-After 0.5 s); an account that allows only
C jobs while the policy asks for 2C (a misconfiguration: a 429 storm); and, as the baseline, the
clean run with `closed.global_limits = false` (only the in-process semaphore), which isolates what
the Prefect concurrency/rate limits cost per job.
Run: .venv/bin/python bench/closed_route.py [N] [C] [L]   (the test command runs 2 1 0.2 as a smoke)
"""

import math
import os
import re
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


def scenario(name: str, n: int, c: int, latency: float, faults: Faults, policy_concurrency: int,
             global_limits: bool = True) -> None:
    scratch = Path(tempfile.mkdtemp())
    rows = [{"item_id": f"s{i}", "campaign": "bench", "prompt": f"shot {i}", "duration_s": 4.0, "aspect": "16:9",
             "realism": "high"} for i in range(n)]
    pl.DataFrame(rows).write_parquet(scratch / "catalog.parquet")
    policy = policy_file(scratch / "policy.toml", policy_concurrency, global_limits)
    with VideosSandbox(latency_s=latency, poll_after_ms=250, faults=faults) as box:
        box.render(type("J", (), {"size": "1280x720", "seconds": 4})())  # pre-render the shared MP4

        def closed(pol):
            return OpenAIVideoProvider(pol.routes["sora"], client=make_client(pol.routes["sora"], base_url=box.base_url,
                                                                      api_key=box.api_key), route_id="sora")

        hands = InProcess(providers={"sora": closed, "wan": None, "wan-hosted": None})
        t0 = time.perf_counter()
        summary = produce_catalog(str(scratch / "catalog.parquet"), out=str(scratch / "out"), policy_path=str(policy),
                                  in_process=hands)
        wall = time.perf_counter() - t0
        ledger = open_ledger(open_root(str(scratch / "out"))).frame()
        span = (ledger.filter(pl.col("status") == "settled")["created_at"].max()
                - ledger.filter(pl.col("status") == "reserved")["created_at"].min()).total_seconds()
        n429 = sum(status == 429 for _, _, status in box.requests)
        creates = sum(j.kind == "create" for j in box.jobs.values())
        paid = ledger.filter(pl.col("status").is_in(SPENT))["cost_usd"].sum()
        finished = summary["status_counts"].get("finished", 0)
        ok = creates == finished and abs(paid - box.total_billed_usd()) < 1e-9
    ideal = math.ceil(n / c) * latency
    print(f"{name:<36} span {span:6.1f} s  ideal {ideal:5.1f} s  ratio {span / ideal:4.2f}  "
          f"flow wall {wall:6.1f} s  429s {n429:4d}  finished {finished}/{n}  jobs {creates}  "
          f"ledger==bill {ok}", flush=True)


def main(n: int, c: int, latency: float) -> None:
    load_policy(None)
    print(f"N={n} clips of 4 s, C={c} jobs in flight, L={latency} s per job; ideal ceil(N/C)*L", flush=True)
    scenario("clean", n, c, latency, Faults(), c)
    scenario("30% of submits answer 429", n, c, latency, Faults(rate_limit_p=0.3, retry_after_s=0.5), c)
    scenario(f"account allows {c}, policy asks {2 * c}", n, c, latency,
             Faults(max_in_flight=c, retry_after_s=0.5), 2 * c)
    scenario("baseline: clean, global_limits=false", n, c, latency, Faults(), c, global_limits=False)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 40, int(args[1]) if len(args) > 1 else 8, float(args[2]) if len(args) > 2 else 4.0)
