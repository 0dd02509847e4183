"""The ledger database: reservation throughput and latency with 1 and 8 writer processes, and what
reading history costs as it grows.

Part 1: each writer process reserves and settles N items (two transactions per item, the caps
checked in the first) on one ledger, SQLite (WAL, on disk) and PostgreSQL (a throw-away local
cluster, fsync on); we report items/s over all writers and the p50/p99 latency of a reservation.
Baseline, same run: the same number of plain appends of one row each (no cap check), one process.
Part 2: a ledger with H rows of history (H = 10k, 100k, 1M; 100 nights; SQLite): the queries a
run makes (`committed(night)` per reservation; `history(1,000 items)` at its start; `spend` of
one run at its end) against reading every row (`frame()`, what planning did before), same run.
Run: .venv/bin/python bench/ledger_store.py [N] [H ...]   (default 300; 10000 100000 1000000)
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from vidbatch.ledger import ledger_frame, ledger_row
from vidbatch.ledger_store import LedgerStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres_cluster import new_database, postgres_binaries, throwaway_postgres  # noqa: E402

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
                     status="reserved", route="wan", est_cost_usd=0.01, reservation_id=new_reservation_id())
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
                                   status="reserved" if i % 2 == 0 else "settled", route="wan",
                                   est_cost_usd=0.01, cost_usd=0.009, reservation_id=f"res{i // 2}")
                        for i in range(rows))


def throughput(kind: str, url_of, n: int) -> None:
    base = LedgerStore(url_of("base"))
    t = time.perf_counter()
    for i in range(n):
        base.append([ledger_row(run_id="b", night="2026-11-25", item_id=f"b{i}", campaign="c", status="deferred")])
    plain = time.perf_counter() - t
    print(f"| {kind} | baseline: 1 plain append per item | {n} | {plain:.2f} | {n / plain:,.0f} | | |")
    for count in (1, 8):
        url = url_of(f"w{count}")
        LedgerStore(url)
        wall, lat = writers(url, count, n)
        q = statistics.quantiles(lat, n=100)
        print(f"| {kind} | {count} | {count * n} | {wall:.2f} | {count * n / wall:,.0f} | {q[49] * 1000:.2f} | "
              f"{q[98] * 1000:.2f} |", flush=True)


def timed_ms(call, repeat: int = 5) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - t) / repeat * 1000


def main(n: int, histories: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"## reserve + settle, {n} items per writer\n")
        print("| database | writers | items | wall s | items/s | reserve p50 ms | reserve p99 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        throughput("SQLite", lambda name: f"sqlite:///{folder / f'{name}.db'}", n)
        if postgres_binaries() is not None:
            with throwaway_postgres(fsync=True) as server:
                throughput("PostgreSQL", lambda name: new_database(server), n)
        print("\n## reading history (SQLite)\n")
        print("| history rows | committed(night) ms | history(1,000 items) ms | spend(one run) ms | frame() s |")
        print("|---:|---:|---:|---:|---:|")
        for rows in histories:
            store = LedgerStore(f"sqlite:///{folder / f'h{rows}.db'}")
            store.import_frame(history(rows), f"bench-{rows}")
            picked = [i * (rows // 1000) + i % 2 for i in range(1000)]  # spread over history; half settled
            keys = pl.DataFrame({"campaign": [f"c{j % 50}" for j in picked], "item_id": [f"i{j}" for j in picked]})
            assert store.settled_for(keys).height == 500
            committed_ms = timed_ms(lambda store=store: store.committed("2026-09-15"))
            history_ms = timed_ms(lambda store=store, keys=keys: store.history(keys, "2026-09-15"))
            spend_ms = timed_ms(lambda store=store: store.spend(["route"], run_id="r7"))
            t = time.perf_counter()
            store.frame()
            read_s = time.perf_counter() - t
            print(f"| {rows:,} | {committed_ms:.1f} | {history_ms:.1f} | {spend_ms:.1f} | {read_s:.2f} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300,
         tuple(int(a) for a in sys.argv[2:]) or (10_000, 100_000, 1_000_000))
