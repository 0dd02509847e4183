"""Summaries of a run and of the ledger. Pure: polars only."""

from __future__ import annotations

import polars as pl

__all__ = ["spend_by", "run_outcomes"]


def spend_by(ledger: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Estimated vs actual spend grouped by `keys` (e.g. campaign, provider, night).

    Estimated: the estimates of calls that were made (reserved rows). Actual: settled + failed costs.
    """
    return (ledger.group_by(keys).agg(
        (pl.col("status") == "settled").sum().alias("clips"),
        (pl.col("status") == "failed").sum().alias("failed_calls"),
        (pl.col("status") == "deferred").sum().alias("deferred"),
        pl.col("est_cost_usd").filter(pl.col("status") == "reserved").sum().alias("est_usd"),
        pl.col("cost_usd").filter(pl.col("status").is_in(["settled", "failed"])).sum().alias("actual_usd"),
    ).sort(keys))


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
