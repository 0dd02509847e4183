"""Summaries of a run and of the ledger. Pure: polars only."""

from __future__ import annotations

import polars as pl

from vidbatch.statuses import ItemStatus

__all__ = ["run_outcomes", "plan_groups", "needs_a_look", "route_summary", "cents"]


def cents(frame: pl.DataFrame) -> pl.DataFrame:
    """Money columns (`*_usd`) rounded to 4 decimals: what a person reads, not float noise."""
    return frame.with_columns(
        pl.col(c).round(4) for c, t in frame.schema.items() if c.endswith("_usd") and t.is_float()
    )


def route_summary(items: pl.DataFrame, spend: pl.DataFrame) -> pl.DataFrame:
    """One row per route: its items by status (a column each), then this run's estimated and
    actual money on it. `items`: route (the one that made or holds each item), status;
    `spend`: route, est_usd, actual_usd (LedgerStore.spend by route)."""
    if items.is_empty():
        return pl.DataFrame(schema={"route": pl.String, "est_usd": pl.Float64, "actual_usd": pl.Float64})
    counts = (
        items.with_columns(pl.col("route").fill_null("(none)"))
        .group_by("route", "status")
        .len()
        .pivot(on="status", index="route", values="len", sort_columns=True)
        .fill_null(0)
    )
    money = spend.select("route", "est_usd", "actual_usd")
    return cents(
        counts.join(money, on="route", how="left")
        .with_columns(pl.col("est_usd", "actual_usd").fill_null(0.0))
        .sort("route")
    )


def run_outcomes(plan: pl.DataFrame, outcomes: pl.DataFrame) -> pl.DataFrame:
    """Final status per item: the plan's status, overridden by what happened to planned items.

    `outcomes` has item_id, campaign, outcome (an ItemStatus), detail, asset_uri, and optionally
    route/model/est_cost_usd as made (they differ from the plan after a mid-run fallback) and the
    cap that deferred it mid-run (`cap`, `cap_usd`; else the plan's, the first cap that refused it).
    """
    missing = {
        "route": pl.String,
        "model": pl.String,
        "est_cost_usd": pl.Float64,
        "fell_back": pl.Boolean,
        "qa_regenerated": pl.Boolean,
        "cap": pl.String,
        "cap_usd": pl.Float64,
    }
    outcomes = outcomes.with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in missing.items() if c not in outcomes.columns
    )
    planned = plan.select(
        "item_id",
        "campaign",
        "route",
        "model",
        "est_cost_usd",
        "status",
        "reason",
        pl.col("fell_back").alias("planned_fallback"),
        pl.col("cap").alias("planned_cap"),
        pl.col("cap_usd").alias("planned_cap_usd"),
    )
    merged = planned.join(
        outcomes.rename({"route": "made_by", "model": "made_with", "est_cost_usd": "made_est"}),
        on=["campaign", "item_id"],
        how="left",
        maintain_order="left",
    )
    return merged.with_columns(
        pl.col("made_by").fill_null(pl.col("route")).alias("route"),
        pl.col("made_with").fill_null(pl.col("model")).alias("model"),
        pl.col("made_est").fill_null(pl.col("est_cost_usd")).alias("est_cost_usd"),
        pl.col("outcome").fill_null(pl.col("status")).alias("status"),
        (pl.col("planned_fallback").fill_null(False) | pl.col("fell_back").fill_null(False)).alias("fell_back"),
        pl.col("qa_regenerated").fill_null(False),
        pl.when(pl.col("cap").is_null()).then(pl.col("planned_cap")).otherwise(pl.col("cap")).alias("cap"),
        pl.when(pl.col("cap").is_null()).then(pl.col("planned_cap_usd")).otherwise(pl.col("cap_usd")).alias("cap_usd"),
        pl.when(pl.col("detail").is_null())
        .then(pl.col("reason"))
        .when(pl.col("outcome").is_in([ItemStatus.FINISHED.value, ItemStatus.AWAITING_REVIEW.value]))
        .then(pl.format("{}; {}", pl.col("reason"), pl.col("detail")))
        .otherwise(pl.col("detail"))
        .alias("reason"),
    ).drop(
        "outcome", "detail", "made_by", "made_with", "made_est", "planned_fallback", "planned_cap", "planned_cap_usd"
    )


def plan_groups(plan: pl.DataFrame) -> pl.DataFrame:
    """Items and estimated cost by campaign × route × status (× pool, where a route placed items
    on GPU pools): a plan of any size, in a few rows."""
    keys = ["campaign", "route", "status"]
    if "pool" in plan.columns and plan["pool"].is_not_null().any():
        keys.insert(2, "pool")
    return (
        plan.group_by(*keys)
        .agg(pl.len().alias("items"), pl.col("est_cost_usd").sum().alias("est_usd"))
        .sort(*keys, nulls_last=True)
    )


def needs_a_look(plan: pl.DataFrame, rejects: pl.DataFrame, limit: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """Deferred items and rejected catalog rows grouped by kind of reason (numbers aside; most
    frequent first, at most `limit` kinds), each with its count, its first three items and the
    first one's reason; and how many deferred and rejected there are in all."""
    deferred = plan.filter(pl.col("status") == ItemStatus.DEFERRED).select(
        pl.lit(ItemStatus.DEFERRED.value).alias("status"), "item_id", "reason"
    )
    rejected = (
        rejects.group_by("row", maintain_order=True)
        .agg(pl.col("item_id").first(), pl.format("{}: {}", "column", "reason").str.join("; ").alias("reason"))
        .select(pl.lit("rejected").alias("status"), pl.col("item_id").fill_null("(no id)"), "reason")
    )
    both = (
        pl.concat([deferred, rejected])
        .with_row_index("order")
        .with_columns(pl.col("reason").str.replace_all(r"\d+(?:\.\d+)?", "#").alias("kind"))
    )  # 7.9 s and 16.5 s: one kind
    reasons = (
        both.group_by("status", "kind")
        .agg(
            pl.len().alias("items"),
            pl.col("order").min(),
            pl.col("item_id").head(3).str.join(", ").alias("first items"),
            pl.col("reason").first().alias("reason (of the first)"),
        )
        .sort(["items", "order"], descending=[True, False])
        .head(limit)
        .drop("order")
        .select("status", "items", "first items", "reason (of the first)")
    )
    return reasons, {"deferred": deferred.height, "rejected": rejected.height}
