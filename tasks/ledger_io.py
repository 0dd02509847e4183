"""The cost ledger of an output root, as Prefect tasks and helpers over its store (vidbatch.ledger_store)."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from vidbatch.ledger_store import ledger_for
from vidbatch.storage import OutputRoot

__all__ = ["read_ledger", "append_ledger", "write_ledger_rows"]


def write_ledger_rows(root: OutputRoot, rows: list[dict]) -> None:
    """Append rows in one transaction (a no-op for no rows). Called inside paid tasks, so a job id
    is durable the moment it exists and the settlement right after the call."""
    ledger_for(root).append(rows)


@task(name="read-ledger", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_ledger(root: OutputRoot, *, run_id: str | None = None, night: str | None = None) -> pl.DataFrame:
    """The ledger's rows: all of them, or one run's, or one night's."""
    return ledger_for(root).frame(run_id=run_id, night=night)


@task(name="append-ledger", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def append_ledger(root: OutputRoot, rows: list[dict]) -> int:
    write_ledger_rows(root, rows)
    return len(rows)
