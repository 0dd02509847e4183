"""A reservation as its night fills: the cap check's read of what the night committed, and one
whole reservation (check + insert, in the write lock), on a night already holding N finished clips.

Each size is a fresh SQLite ledger (WAL, on disk) with N clips in one night, each written as a
clip is (reserved, paid, settled, delivered), plus 100 clips on another night. Baseline, same run:
the first size. A flat figure means a night of 10,000 clips reserves its last clip as fast as its
first; before `night_spend` (revision 0008) the read summed every spent row of the night.
Run: .venv/bin/python bench/night_reservations.py [N ...]   (default 1000 10000)
"""

import statistics
import sys
import tempfile
import time

from vidbatch.ledger import ledger_row, new_reservation_id
from vidbatch.ledger_store import LedgerStore, queries
from vidbatch.policy import Caps

NIGHT, OTHER = "2026-12-01", "2026-11-30"
CAPS = Caps(night_usd=1e9, campaign_usd=1e9, item_usd=1.0, timezone="UTC")
READS = 50


def clip_rows(n: int, night: str, prefix: str) -> list[dict]:
    rows = []
    for i in range(n):
        reservation = new_reservation_id()
        for status in ("reserved", "paid", "settled", "delivered"):
            rows.append(ledger_row(run_id=f"run-{i % 3}", night=night, item_id=f"{prefix}{i}", campaign=f"c{i % 5}",
                                   fingerprint="f", route="wan", model="m", status=status, sandbox=False,
                                   reservation_id=reservation, est_cost_usd=0.01,
                                   cost_usd=0.01 if status == "paid" else 0.0))
    return rows


def measure(n: int) -> tuple[float, float]:
    """Median ms of the committed read and of one reservation on a night of `n` clips."""
    store = LedgerStore(f"sqlite:///{tempfile.mkdtemp()}/ledger.db")
    rows = clip_rows(n, NIGHT, "i") + clip_rows(100, OTHER, "o")
    for start in range(0, len(rows), 2000):
        store.append(rows[start:start + 2000])
    reads = []
    with store._reading() as conn:
        for _ in range(READS):
            started = time.perf_counter()
            queries.committed_by(conn, NIGHT)
            reads.append(time.perf_counter() - started)
    reserves = []
    for i in range(READS):
        row = ledger_row(run_id="run-new", night=NIGHT, item_id=f"new{i}", campaign="c0", fingerprint="f",
                         route="wan", model="m", status="reserved", est_cost_usd=0.01,
                         reservation_id=new_reservation_id(), sandbox=False)
        started = time.perf_counter()
        assert store.reserve(row, CAPS) is None
        reserves.append(time.perf_counter() - started)
    return statistics.median(reads) * 1000, statistics.median(reserves) * 1000


def main(sizes: list[int]) -> None:
    print(f"{'clips in the night':>18} | {'committed read ms':>17} | {'vs first':>8} | {'reservation ms':>14} | "
          f"{'vs first':>8}")
    first = None
    for n in sizes:
        read_ms, reserve_ms = measure(n)
        first = first or (read_ms, reserve_ms)
        print(f"{n:>18,} | {read_ms:>17.2f} | {read_ms / first[0]:>7.2f}x | {reserve_ms:>14.2f} | "
              f"{reserve_ms / first[1]:>7.2f}x")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
