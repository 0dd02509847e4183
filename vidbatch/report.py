"""Summaries of a run and of the ledger. Pure: polars only."""

from __future__ import annotations

import polars as pl

__all__ = ["run_outcomes", "plan_groups", "needs_a_look"]


def run_outcomes(plan: pl.DataFrame, outcomes: pl.DataFrame) -> pl.DataFrame:
    """Final status per item: the plan's status, overridden by what happened to planned items.

    `outcomes` has item_id, campaign, outcome ("finished" | "failed" | "deferred"), detail, asset_uri,
    and optionally provider/model as made (they differ from the plan after a mid-run fallback).
    """
    if "provider" not in outcomes.columns:
        outcomes = outcomes.with_columns(pl.lit(None, dtype=pl.String).alias("provider"),
                                         pl.lit(None, dtype=pl.String).alias("model"))
    merged = plan.select("item_id", "campaign", "provider", "model", "est_cost_usd", "status", "reason").join(
        outcomes.rename({"provider": "made_by", "model": "made_with"}), on=["campaign", "item_id"], how="left",
        maintain_order="left")
    return merged.with_columns(
        pl.col("made_by").fill_null(pl.col("provider")).alias("provider"),
        pl.col("made_with").fill_null(pl.col("model")).alias("model"),
        pl.col("outcome").fill_null(pl.col("status")).alias("status"),
        pl.when(pl.col("detail").is_null()).then(pl.col("reason"))
        .when(pl.col("outcome") == "finished").then(pl.format("{}; {}", pl.col("reason"), pl.col("detail")))
        .otherwise(pl.col("detail")).alias("reason")).drop("outcome", "detail", "made_by", "made_with")


def plan_groups(plan: pl.DataFrame) -> pl.DataFrame:
    """Items and estimated cost by campaign × route × status: a plan of any size, in a few rows."""
    return (plan.group_by("campaign", "provider", "status")
            .agg(pl.len().alias("items"), pl.col("est_cost_usd").sum().alias("est_usd"))
            .sort("campaign", "provider", "status", nulls_last=True))


def needs_a_look(plan: pl.DataFrame, rejects: pl.DataFrame, limit: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """Deferred items and rejected catalog rows grouped by kind of reason (numbers aside; most
    frequent first, at most `limit` kinds), each with its count, its first three items and the
    first one's reason; and how many deferred and rejected there are in all."""
    deferred = plan.filter(pl.col("status") == "deferred").select(pl.lit("deferred").alias("status"), "item_id",
                                                                  "reason")
    rejected = rejects.group_by("row", maintain_order=True).agg(
        pl.col("item_id").first(), pl.format("{}: {}", "column", "reason").str.join("; ").alias("reason")).select(
        pl.lit("rejected").alias("status"), pl.col("item_id").fill_null("(no id)"), "reason")
    both = pl.concat([deferred, rejected]).with_row_index("order").with_columns(
        pl.col("reason").str.replace_all(r"\d+(?:\.\d+)?", "#").alias("kind"))  # 7.9 s and 16.5 s: one kind
    reasons = (both.group_by("status", "kind")
               .agg(pl.len().alias("items"), pl.col("order").min(), pl.col("item_id").head(3).str.join(", ")
                    .alias("first items"), pl.col("reason").first().alias("reason (of the first)"))
               .sort(["items", "order"], descending=[True, False]).head(limit).drop("order")
               .select("status", "items", "first items", "reason (of the first)"))
    return reasons, {"deferred": deferred.height, "rejected": rejected.height}

