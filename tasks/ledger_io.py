"""Reading and appending the cost ledger under an output root (`<root>/ledger/part-*.parquet`)."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from vidbatch.ledger import LEDGER_SCHEMA, ledger_frame
from vidbatch.storage import OutputRoot

__all__ = ["LEDGER_PREFIX", "read_ledger", "append_ledger", "write_ledger_rows"]

LEDGER_PREFIX = "ledger"


def write_ledger_rows(root: OutputRoot, rows: list[dict]) -> None:
    """Append rows as one new Parquet part (a no-op for no rows). Called inside paid tasks, so the
    reservation is durable before the call and the settlement right after it."""
    if rows:
        root.append_part(ledger_frame(rows), LEDGER_PREFIX)


@task(name="read-ledger", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_ledger(root: OutputRoot) -> pl.DataFrame:
    return root.read_parquet_dir(LEDGER_PREFIX, LEDGER_SCHEMA)


@task(name="append-ledger", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def append_ledger(root: OutputRoot, rows: list[dict]) -> int:
    write_ledger_rows(root, rows)
    return len(rows)
