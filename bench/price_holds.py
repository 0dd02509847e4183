"""A price that holds: a campaign cap against Wan clips whose real GPU seconds are far above the
policy's figure (the tiny Wan model on this machine's CPU, the real catalog flow, ephemeral Prefect).

Night 1 plans every item at the policy's figure (wrong by about 100x); the renders grow their
reservations as they run, under the cap, or stop. Night 2 plans with what night 1 measured.
Prints, as ratios against the cap and the policy's figure measured in the same run:
  spent / cap (must be <= 1), items made (in priority order) and refused, raises, GPU seconds
  charged to clips that were stopped, and the measured figure / the policy's figure.
Run: .venv/bin/python bench/price_holds.py [ITEMS] [CAP_USD]     (default 8 items, $0.006)
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
STATED = 0.01  # GPU s per shot in the policy; the tiny model takes about 100x that here


def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    cap = float(sys.argv[2]) if len(sys.argv) > 2 else 0.006
    from vidbatch.flows.produce_catalog import produce_catalog
    from vidbatch.ledger import SPENT
    from vidbatch.ledger_store import open_ledger
    from vidbatch.storage import open_root

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        text = (REPO / "tests" / "two-routes-policy.toml").read_text()
        text = re.sub(r"^campaign_usd = .*$", f"campaign_usd = {cap}", text, count=1, flags=re.M)
        text = text.replace("gpu_usd_per_hour = 2.50", "gpu_usd_per_hour = 3.6").replace(
            "concurrency = 1\n", "concurrency = 2\n", 1)
        text = re.sub(r'gpu_s_per_shot = \{ "480p" = [0-9.]+, "720p" = [0-9.]+ \}',
                      f'gpu_s_per_shot = {{ "480p" = {STATED}, "720p" = {STATED} }}', text)
        (tmp / "policy.toml").write_text(text)
        pl.DataFrame([{"item_id": f"i{n}", "campaign": "c1", "prompt": "a cat on the beach", "duration_s": 1.0,
                       "aspect": "16:9", "realism": "low", "priority": items - n} for n in range(items)]
                     ).write_parquet(tmp / "catalog.parquet")
        started = time.perf_counter()
        state = produce_catalog(str(tmp / "catalog.parquet"), out=str(tmp / "out"),
                                policy_path=str(tmp / "policy.toml"), return_state=True)
        run_s = time.perf_counter() - started
        store = open_ledger(open_root(str(tmp / "out")))
        ledger = store.frame()
        spent = ledger.filter(pl.col("status").is_in(SPENT))["cost_usd"].sum()
        made = ledger.filter(pl.col("status") == "settled")["item_id"].to_list()
        stopped = ledger.filter(pl.col("status") == "failed")
        figure = store.measured().get("wan", {}).get("tiny|480p|stock")
        print(json.dumps({
            "items": items, "cap_usd": cap, "run": state.type.value, "run_s": round(run_s, 1),
            "spent_usd": round(spent, 6), "spent_over_cap": round(spent / cap, 3),
            "made": len(made), "made_in_priority_order": made == [f"i{n}" for n in range(len(made))],
            "deferred": ledger.filter(pl.col("status") == "deferred").height,
            "raises": ledger.filter(pl.col("status") == "raised").height,
            "stopped_mid_render": stopped.height, "charged_to_stopped_usd": round(stopped["cost_usd"].sum(), 6),
            "refused_before_start": ledger.filter(pl.col("status") == "released").height,
            "reserved_at_policy_usd": round(ledger.filter(pl.col("status") == "reserved")["est_cost_usd"].max(), 7),
            "measured_gpu_s_per_shot": round(figure.gpu_s_per_shot, 3) if figure else None,
            "measured_over_policy_figure": round(figure.gpu_s_per_shot / STATED, 1) if figure else None,
        }), flush=True)


if __name__ == "__main__":
    main()
