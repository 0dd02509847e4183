"""What a long ledger history costs `vidbatch plan --out` and a run's start, per history size.

An output root gets H rows of ledger history (H = 10k, 100k, 1M; 100 nights, 50 campaigns; every
reservation settled), among them the settled clips of a 1,000-item catalog (fingerprints as the
catalog's), so planning finds every item done. For each H, each step its own process:
  plan --out   `vidbatch plan CATALOG --out ROOT`: reads the catalog's settled items, the open
               reservations and tonight's money from the ledger database, plans, saves the plan
  run          `vidbatch run CATALOG --out ROOT` (ephemeral Prefect): the whole run of a catalog
               already made (start-up, plan, summary, report; nothing to make)
  ledger       `vidbatch ledger --out ROOT`: the newest 40 nights by campaign and provider
  review       `vidbatch review --out ROOT`: the clips awaiting review (1 clip in 100 of the history
               was held for review, half of those decided since), found on the status index
(plan, ledger and review: median of 3 processes; run: one)
  parts read   baseline, same run: reading the same history as the old ledger's Parquet parts
               (one part per 10 rows, as runs wrote them), which every run did two or three times
Run: .venv/bin/python bench/ledger_history.py [H ...]   (default 10000 100000 1000000)
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from vidbatch.catalog import validate_catalog, with_fingerprints
from vidbatch.ledger import LEDGER_SCHEMA, OPTIONAL_COLUMNS
from vidbatch.ledger_store import open_ledger
from vidbatch.storage import open_root

CATALOG_ITEMS = 1_000
CAMPAIGNS = 50
NIGHTS = [f"2026-{8 + n // 28:02d}-{1 + n % 28:02d}" for n in range(100)]


def catalog_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "item_id": [f"cat{n}" for n in range(CATALOG_ITEMS)],
        "campaign": [f"c{n % CAMPAIGNS}" for n in range(CATALOG_ITEMS)],
        "prompt": [f"a paper boat number {n} on a pond" for n in range(CATALOG_ITEMS)],
        "duration_s": [2.0] * CATALOG_ITEMS, "aspect": ["16:9"] * CATALOG_ITEMS, "realism": ["low"] * CATALOG_ITEMS})


def history(rows: int, made: pl.DataFrame) -> pl.DataFrame:
    """`rows` ledger rows: reserved + settled pairs over 100 nights; the first pairs are the catalog's."""
    pairs = rows // 2
    n = pl.int_range(0, pairs, eager=True)
    first = pl.DataFrame({"item_id": made["item_id"], "campaign": made["campaign"], "fingerprint": made["fingerprint"]})
    filler = pl.DataFrame({"item_id": ("h" + n.cast(pl.String)), "campaign": ("c" + (n % CAMPAIGNS).cast(pl.String)),
                           "fingerprint": pl.Series(["f"] * pairs)})
    items = pl.concat([first, filler]).head(pairs)
    base = items.with_columns(
        pl.Series("night", [NIGHTS[i * len(NIGHTS) // pairs] for i in range(pairs)]),
        ("r" + (pl.int_range(0, pairs) // 1000).cast(pl.String)).alias("run_id"),
        pl.lit("wan").alias("route"), pl.lit("wan2.1-t2v-1.3b").alias("model"),
        pl.lit(0.02).alias("est_cost_usd"), pl.lit(None, pl.Float64).alias("seconds"),
        ("res" + pl.int_range(0, pairs).cast(pl.String)).alias("reservation_id"),
        pl.lit(None, pl.String).alias("job_id"), pl.lit(1, pl.Int64).alias("attempt"), pl.lit(False).alias("sandbox"),
        pl.lit(None, pl.String).alias("sha256"), pl.lit("").alias("reason"),
        pl.lit(datetime(2026, 9, 1, tzinfo=timezone.utc)).alias("created_at"))
    reserved = base.with_columns(pl.lit("reserved").alias("status"), pl.lit(0.0).alias("cost_usd"),
                                 pl.lit(None, pl.String).alias("asset_uri"))
    settled = base.with_columns(pl.lit("settled").alias("status"), pl.lit(0.018).alias("cost_usd"),
                                ("s3://studio/raw/" + pl.col("item_id") + ".mp4").alias("asset_uri"))
    held = settled.filter(pl.int_range(0, pl.len()) % 100 == 99).with_columns(
        pl.lit("awaiting_review").alias("status"), pl.lit(0.0).alias("cost_usd"))
    decided = held.filter(pl.int_range(0, pl.len()) % 2 == 0).with_columns(pl.lit("approved").alias("status"))
    every = pl.concat([reserved, settled, held, decided], how="diagonal_relaxed")
    return every.with_columns(pl.lit(None, LEDGER_SCHEMA[c]).alias(c) for c in OPTIONAL_COLUMNS).select(
        list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} failed ({done.returncode}): {done.stderr[-3000:]}")
    return wall


def main(sizes: list[int]) -> None:
    vidbatch = str(Path(sys.executable).parent / "vidbatch")
    policy = str(Path(__file__).resolve().parent.parent / "catalogs" / "demo-policy.toml")
    print("| history rows | plan --out s | vs first | run (nothing to make) s | vs first | ledger s | vs first | "
          "review s (clips waiting) | vs first | old Parquet parts read s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog = folder / "catalog.parquet"
        frame = catalog_frame()
        frame.write_parquet(catalog)
        made = with_fingerprints(validate_catalog(frame)[0])
        for rows in sizes:
            out = folder / f"out-{rows}"
            rows_frame = history(rows, made)
            open_ledger(open_root(str(out))).import_frame(rows_frame, f"bench-{rows}")
            saved = folder / f"plan-{rows}.parquet"
            plan_s = statistics.median(timed([vidbatch, "plan", str(catalog), "--policy", policy, "--out", str(out),
                                              "--save", str(saved)], folder) for _ in range(3))
            ledger_s = statistics.median(timed([vidbatch, "ledger", "--out", str(out)], folder) for _ in range(3))
            review_s = statistics.median(timed([vidbatch, "review", "--out", str(out)], folder) for _ in range(3))
            waiting = open_ledger(open_root(str(out))).awaiting_review().height
            done = pl.read_parquet(saved).filter(pl.col("status").is_in(["done", "awaiting_review"])).height
            assert done == min(CATALOG_ITEMS, rows // 2), f"{done} items found done in the plan"
            run_s = timed([vidbatch, "run", str(catalog), "--policy", policy, "--out", str(out)], folder)
            parts = folder / f"parts-{rows}"
            parts.mkdir()
            for start in range(0, rows, 10):
                rows_frame.slice(start, 10).write_parquet(parts / f"part-{start:08d}.parquet")
            started = time.perf_counter()
            pl.read_parquet(sorted(parts.glob("part-*.parquet")), schema=LEDGER_SCHEMA)
            parts_s = time.perf_counter() - started
            first = first or {"plan": plan_s, "run": run_s, "ledger": ledger_s, "review": review_s}
            print(f"| {rows:,} | {plan_s:.2f} | {plan_s / first['plan']:.2f}× | {run_s:.2f} | "
                  f"{run_s / first['run']:.2f}× | {ledger_s:.2f} | {ledger_s / first['ledger']:.2f}× | "
                  f"{review_s:.2f} ({waiting:,}) | {review_s / first['review']:.2f}× | {parts_s:.2f} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
