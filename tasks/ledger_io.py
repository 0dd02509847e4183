"""The cost ledger of a run, as Prefect tasks and helpers over its store (vidbatch.ledger_store),
which the run opens once and passes in."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from vidbatch.ledger import History
from vidbatch.ledger_store import LedgerStore

__all__ = ["read_history", "read_settled", "read_spend", "append_ledger", "write_ledger_rows"]


def write_ledger_rows(ledger: LedgerStore, rows: list[dict]) -> None:
    """Append rows in one transaction (a no-op for no rows). Called inside paid tasks, so a job id
    is durable the moment it exists and the settlement right after the call."""
    ledger.append(rows)


@task(
    name="read-history",
    task_run_name="read the ledger's history of the catalog",
    retries=2,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
)
def read_history(ledger: LedgerStore, keys: pl.DataFrame, night: str) -> History:
    """What the ledger knows of these items (campaign, item_id) and of `night`'s money."""
    return ledger.history(keys, night)


@task(name="read-settled", task_run_name="read settled clips", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_settled(ledger: LedgerStore, keys: pl.DataFrame) -> pl.DataFrame:
    """The latest settled clip that passed QA for each of these items (campaign, item_id) that has one."""
    return ledger.settled_for(keys)


@task(name="read-spend", task_run_name="read spend by {keys}", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_spend(
    ledger: LedgerStore, keys: list[str], *, run_id: str | None = None, nights: list[str] | None = None
) -> pl.DataFrame:
    """Estimated vs actual money grouped by `keys`, for one run or some nights (LedgerStore.spend)."""
    return ledger.spend(keys, run_id=run_id, nights=nights)


@task(name="append-ledger", task_run_name="append ledger rows", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def append_ledger(ledger: LedgerStore, rows: list[dict]) -> int:
    write_ledger_rows(ledger, rows)
    return len(rows)
