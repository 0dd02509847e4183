"""The ledger database: reservation throughput and latency with 1 and 8 writer processes, and what
reading history costs as it grows.

Part 1: each writer process reserves and settles N items (two transactions per item, the caps
checked in the first) on one SQLite ledger; we report items/s over all writers and the p50/p99
latency of a reservation. Baseline, same run: the same number of plain appends of one row each
(no cap check), single process.
Part 2: a ledger with H rows of history (H = 10k, 100k, 1M; 100 nights): the SQL aggregate a
reservation runs (`committed(night)`) and the full read `plan_run` still does (`frame()`), against
reading the same rows as Parquet parts (the old ledger, one part per 10 rows), in the same run.
Run: .venv/bin/python bench/ledger_store.py [N]
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from vidbatch.ledger import LEDGER_SCHEMA, ledger_frame, ledger_row
from vidbatch.ledger_store import LedgerStore

WRITER = """
import json, sys, time
from vidbatch.ledger import ledger_row, new_reservation_id
from vidbatch.ledger_store import LedgerStore
from vidbatch.policy import Caps
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
caps = Caps(night_usd=1e9, campaign_usd=1e9, item_usd=10.0, timezone="UTC")
store, latencies = LedgerStore(url), []
started = time.perf_counter()
for i in range(n):
    row = ledger_row(run_id=name, night="2026-11-25", item_id=f"{name}-{i}", campaign=f"c{i % 20}", fingerprint="f",
                     status="reserved", provider="wan", est_cost_usd=0.01, reservation_id=new_reservation_id())
    t = time.perf_counter()
    assert store.reserve(row, caps) is None
    latencies.append(time.perf_counter() - t)
    store.append([{**row, "status": "settled", "cost_usd": 0.009}])
print(json.dumps({"wall": time.perf_counter() - started, "latencies": latencies}))
"""


def writers(url: str, count: int, n: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, f"w{k}", str(n)], stdout=subprocess.PIPE, text=True)
             for k in range(count)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    return time.perf_counter() - started, [x for o in outs for x in o["latencies"]]


def history(rows: int) -> pl.DataFrame:
    return ledger_frame(ledger_row(run_id=f"r{i // 1000}", night=f"2026-{8 + i % 100 // 31:02d}-{1 + i % 100 % 28:02d}",
                                   item_id=f"i{i}", campaign=f"c{i % 50}", fingerprint="f",
                                   status="reserved" if i % 2 == 0 else "settled", provider="wan",
                                   est_cost_usd=0.01, cost_usd=0.009, reservation_id=f"res{i // 2}")
                        for i in range(rows))


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"## reserve + settle, {n} items per writer, SQLite (WAL)\n")
        print("| writers | items | wall s | items/s | reserve p50 ms | reserve p99 ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        base = LedgerStore(f"sqlite:///{folder / 'base.db'}")
        t = time.perf_counter()
        for i in range(n):
            base.append([ledger_row(run_id="b", night="2026-11-25", item_id=f"b{i}", campaign="c", status="deferred")])
        plain = time.perf_counter() - t
        print(f"| baseline: 1 plain append per item | {n} | {plain:.2f} | {n / plain:,.0f} | | |")
        for count in (1, 8):
            url = f"sqlite:///{folder / f'w{count}.db'}"
            LedgerStore(url)
            wall, lat = writers(url, count, n)
            q = statistics.quantiles(lat, n=100)
            print(f"| {count} | {count * n} | {wall:.2f} | {count * n / wall:,.0f} | {q[49] * 1000:.2f} | "
                  f"{q[98] * 1000:.2f} |")
        print("\n## reading history\n")
        print("| history rows | committed(night) ms | frame() s | Parquet parts read s (old ledger) |")
        print("|---:|---:|---:|---:|")
        for rows in (10_000, 100_000, 1_000_000):
            frame = history(rows)
            store = LedgerStore(f"sqlite:///{folder / f'h{rows}.db'}")
            store.import_frame(frame, f"bench-{rows}")
            parts = folder / f"parts-{rows}"
            parts.mkdir()
            if rows <= 100_000:  # one part per 10 rows, as runs wrote them; 1M rows = 100k files is left out
                for start in range(0, rows, 10):
                    frame.slice(start, 10).write_parquet(parts / f"part-{start:08d}.parquet")
            t = time.perf_counter()
            for _ in range(5):
                store.committed("2026-09-15")
            committed_ms = (time.perf_counter() - t) / 5 * 1000
            t = time.perf_counter()
            store.frame()
            read_s = time.perf_counter() - t
            if rows <= 100_000:
                t = time.perf_counter()
                pl.read_parquet(sorted(parts.glob("part-*.parquet")), schema=LEDGER_SCHEMA)
                parquet = f"{time.perf_counter() - t:.2f}"
            else:
                parquet = "(not written: 100,000 files)"
            print(f"| {rows:,} | {committed_ms:.1f} | {read_s:.2f} | {parquet} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
