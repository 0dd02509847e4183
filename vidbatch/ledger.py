"""The cost ledger: its schema, row builders, and what the rows mean. Pure: polars only.

The ledger is append-only. A paid or GPU call is bracketed by two rows sharing a reservation_id:
`reserved` (estimate, written before the call) and exactly one of `settled` (the clip exists),
`failed` (the call failed; cost_usd is what it still cost) or `released` (nothing was spent).
In between, a `submitted` row records each provider job id the moment the provider returns it:
a reservation still open with submitted jobs is resumed by the next attempt or run, never paid
again. It stays open across retries while its job exists at the provider.
`deferred` and `rejected` rows record items a run did not attempt, with the reason.
A `qa_failed` row follows the `settled` row of a clip that failed the QA gate (same
reservation_id, cost 0: the money is in the settled row); that clip does not count as made.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import polars as pl

from vidbatch.planner import Committed

__all__ = ["LEDGER_SCHEMA", "STATUSES", "ledger_row", "ledger_frame", "committed_spend", "settled_items",
           "open_reservations", "jobs_in_flight", "new_reservation_id"]

STATUSES = ("reserved", "submitted", "settled", "failed", "released", "deferred", "rejected", "qa_failed")
CLOSING = ("settled", "failed", "released")

LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "night": pl.String(),
    "item_id": pl.String(),
    "campaign": pl.String(),
    "fingerprint": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "status": pl.String(),
    "est_cost_usd": pl.Float64(),
    "cost_usd": pl.Float64(),
    "seconds": pl.Float64(),
    "asset_uri": pl.String(),
    "sha256": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "reason": pl.String(),
    "reservation_id": pl.String(),
    "job_id": pl.String(),
    "attempt": pl.Int64(),
    "sandbox": pl.Boolean(),
}


def new_reservation_id() -> str:
    return uuid.uuid4().hex


def ledger_row(*, run_id: str, night: str, item_id: str | None, campaign: str | None, status: str,
               fingerprint: str | None = None, provider: str | None = None, model: str | None = None,
               est_cost_usd: float = 0.0, cost_usd: float = 0.0, seconds: float | None = None,
               asset_uri: str | None = None, sha256: str | None = None, reason: str = "",
               reservation_id: str | None = None, job_id: str | None = None, attempt: int | None = None,
               sandbox: bool = False, created_at: datetime | None = None) -> dict[str, Any]:
    """One ledger row as a dict, checked against the schema's statuses."""
    if status not in STATUSES:
        raise ValueError(f"unknown ledger status {status!r}")
    return {
        "run_id": run_id, "night": night, "item_id": item_id, "campaign": campaign,
        "fingerprint": fingerprint, "provider": provider, "model": model, "status": status,
        "est_cost_usd": float(est_cost_usd), "cost_usd": float(cost_usd), "seconds": seconds,
        "asset_uri": asset_uri, "sha256": sha256,
        "created_at": created_at or datetime.now(timezone.utc), "reason": reason,
        "reservation_id": reservation_id, "job_id": job_id, "attempt": attempt, "sandbox": sandbox,
    }


def ledger_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Rows to a frame with exactly the ledger schema."""
    return pl.DataFrame(list(rows), schema=LEDGER_SCHEMA)


def open_reservations(ledger: pl.DataFrame) -> pl.DataFrame:
    """Reserved rows that no settled/failed/released row has closed yet."""
    closed = ledger.filter(pl.col("status").is_in(CLOSING))["reservation_id"].implode()
    return ledger.filter((pl.col("status") == "reserved") & ~pl.col("reservation_id").is_in(closed))


def committed_spend(ledger: pl.DataFrame, night: str) -> Committed:
    """What tonight has already committed: money spent plus estimates still reserved.

    An open reservation counts at its estimate, so a crashed run can only make the caps stricter.
    """
    tonight = ledger.filter(pl.col("night") == night)
    spent = tonight.filter(pl.col("status").is_in(["settled", "failed"])).select(
        "campaign", pl.col("cost_usd").alias("usd"))
    held = open_reservations(tonight).select("campaign", pl.col("est_cost_usd").alias("usd"))
    both = pl.concat([spent, held])
    by_campaign = both.group_by("campaign").agg(pl.col("usd").sum())
    return Committed(night_usd=float(both["usd"].sum()),
                     by_campaign=dict(zip(by_campaign["campaign"], by_campaign["usd"])))


def settled_items(ledger: pl.DataFrame) -> pl.DataFrame:
    """The latest settled row per (campaign, item_id) that passed QA: what already exists."""
    rejected = ledger.filter(pl.col("status") == "qa_failed")["reservation_id"].implode()
    return (ledger.filter((pl.col("status") == "settled") & ~pl.col("reservation_id").is_in(rejected))
            .sort("created_at")
            .group_by("campaign", "item_id", maintain_order=True).last()
            .select("campaign", "item_id", "fingerprint", "run_id", "asset_uri", "cost_usd", "created_at",
                    "job_id"))


def jobs_in_flight(ledger: pl.DataFrame) -> pl.DataFrame:
    """Open reservations that already have provider jobs: what a new attempt must resume.

    One row per reservation: campaign, item_id, fingerprint, provider, model, est_cost_usd,
    reservation_id, run_id, and job_ids (in submit order).
    """
    still_open = open_reservations(ledger).select(
        "reservation_id", "campaign", "item_id", "fingerprint", "provider", "model", "est_cost_usd", "run_id")
    jobs = (ledger.filter(pl.col("status") == "submitted").sort("created_at")
            .group_by("reservation_id", maintain_order=True).agg(pl.col("job_id").alias("job_ids")))
    return still_open.join(jobs, on="reservation_id", how="inner", maintain_order="left")
