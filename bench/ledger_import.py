"""Moving a ledger: `vidbatch ledger import` and `ledger export` at growing sizes (issue 29).

For each size N: a Parquet ledger of N rows (reservations reserved then settled, a tenth left
open, 500 clips a run, 1,000 a night) is imported into an empty ledger database as the command
does (`read_ledger_parquet` + `LedgerStore.import_frame`), then exported (`export_nights`, one
file a night). Printed: seconds and microseconds a row each way, and the cost a row against the
smallest size measured in the same run (1.00 = linear). SQLite (WAL, on disk), then PostgreSQL
(a throw-away local cluster) when its binaries are installed.

Run: .venv/bin/python bench/ledger_import.py [N ...]   (default 100000 300000 1000000)
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres_cluster import new_database, postgres_binaries, throwaway_postgres  # noqa: E402
from vidbatch.ledger import LEDGER_SCHEMA  # noqa: E402
from vidbatch.ledger_store import LedgerStore  # noqa: E402
from vidbatch.ledger_store.parquet import export_nights, read_ledger_parquet  # noqa: E402


def ledger_file(n: int, path: Path) -> Path:
    """N ledger rows as a Parquet file, built with polars (no Python loop per row)."""
    pairs = n // 2
    clip = pl.int_range(0, pairs, eager=True)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    base = pl.DataFrame({"clip": clip}).with_columns(
        run_id=pl.format("run-{}", pl.col("clip") // 500), item_id=pl.format("i{}", pl.col("clip")),
        campaign=pl.format("c{}", pl.col("clip") % 20), reservation_id=pl.format("r{}", pl.col("clip")),
        night=(pl.lit(start.date()) + pl.duration(days=pl.col("clip") // 1000)).dt.strftime("%Y-%m-%d"),
        created_at=pl.lit(start) + pl.duration(seconds=pl.col("clip")))
    common = dict(fingerprint=pl.lit("f"), route=pl.lit("wan"), model=pl.lit("wan2.1-t2v-1.3b"), sandbox=pl.lit(False))
    reserved = base.with_columns(status=pl.lit("reserved"), est_cost_usd=pl.lit(0.10), cost_usd=pl.lit(0.0), **common)
    settled = base.filter(pl.col("clip") % 10 != 0).with_columns(  # a tenth stays open: the index is rebuilt
        status=pl.lit("settled"), est_cost_usd=pl.lit(0.0), cost_usd=pl.lit(0.09), **common,
        created_at=pl.col("created_at") + timedelta(seconds=30))
    rows = pl.concat([reserved, settled]).sort("clip", "created_at").drop("clip")
    rows = rows.with_columns(pl.lit(None, LEDGER_SCHEMA[c]).alias(c) for c in LEDGER_SCHEMA if c not in rows.columns)
    rows.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA).write_parquet(path)
    return path


def one_size(url: str, n: int, work: Path) -> tuple[int, float, float]:
    source = ledger_file(n, work / f"ledger-{n}.parquet")
    store = LedgerStore(url)
    started = time.perf_counter()
    added = store.import_frame(read_ledger_parquet(str(source)), str(source))
    imported_s = time.perf_counter() - started
    started = time.perf_counter()
    export_nights(store, str(work / f"export-{n}"))
    exported_s = time.perf_counter() - started
    store.engine.dispose()
    return added, imported_s, exported_s


def table(label: str, urls, sizes: list[int], work: Path) -> None:
    print(f"{label}: rows, import s (us/row, x the smallest), export s (us/row, x the smallest)")
    base = None
    for n, url in zip(sizes, urls):
        added, imported_s, exported_s = one_size(url, n, work)
        per = (imported_s / added * 1e6, exported_s / added * 1e6)
        base = base or per
        print(f"  {added:>9,}  import {imported_s:7.2f} s ({per[0]:6.1f} us, {per[0] / base[0]:.2f}x)  "
              f"export {exported_s:7.2f} s ({per[1]:6.1f} us, {per[1] / base[1]:.2f}x)", flush=True)


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="vidbatch-import-") as folder:
        work = Path(folder)
        table("SQLite", [f"sqlite:///{work / f'sqlite-{n}.db'}" for n in sizes], sizes, work)
        if postgres_binaries() is None:
            print("PostgreSQL: not installed here (Debian's postgresql), skipped")
            return
        with throwaway_postgres(fsync=True) as server:
            table("PostgreSQL", [new_database(server) for _ in sizes], sizes, work)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 300_000, 1_000_000])
