"""One run of a catalog, as pure steps: which night, what is already done, what to make.

`plan_run` extends the planner with the ledger's memory: items already settled with the same
fingerprint are `done` (nothing spent again), spend committed tonight counts against the caps.
`clip_jobs` turns planned rows into `ClipJob`s, the unit a generate task works on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel, ConfigDict

from vidbatch.ledger import committed_spend, ledger_row, settled_items
from vidbatch.planner import plan_catalog
from vidbatch.policy import Policy

__all__ = ["ClipJob", "night_of", "plan_run", "clip_jobs", "plan_ledger_rows", "reject_ledger_rows"]


class ClipJob(BaseModel):
    """Everything a generate task needs about one item; small and serialisable."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    campaign: str
    fingerprint: str
    provider: str
    model: str
    width: int
    height: int
    resolution: str
    prompt: str
    negative_prompt: str
    duration_s: float
    trim_start_s: float
    seed: int
    image_uri: str | None
    est_cost_usd: float
    storyboard_id: str | None = None
    scene_index: int | None = None

    @property
    def raw_seconds(self) -> float:
        return self.trim_start_s + self.duration_s


def night_of(moment: datetime, timezone: str) -> str:
    """The night a run belongs to: its start date in the policy's time zone (YYYY-MM-DD)."""
    return moment.astimezone(ZoneInfo(timezone)).date().isoformat()


def plan_run(catalog: pl.DataFrame, policy: Policy, ledger: pl.DataFrame, night: str,
             unavailable: Mapping[str, str]) -> pl.DataFrame:
    """Plan the items not already settled; settled ones come back with status `done`.

    `catalog` needs a `fingerprint` column (see catalog.with_fingerprints).
    """
    settled = settled_items(ledger).rename({"fingerprint": "settled_fp", "run_id": "settled_run",
                                            "cost_usd": "settled_cost"})
    joined = catalog.join(settled.select("campaign", "item_id", "settled_fp", "settled_run", "settled_cost"),
                          on=["campaign", "item_id"], how="left", maintain_order="left")
    same = pl.col("settled_fp") == pl.col("fingerprint")
    done = joined.filter(same.fill_null(False))
    todo = joined.filter(~same.fill_null(False))
    plan = plan_catalog(todo.drop("settled_fp", "settled_run", "settled_cost"), policy,
                        committed=committed_spend(ledger, night), unavailable=unavailable)
    changed = todo.filter(pl.col("settled_fp").is_not_null()).select("item_id", "campaign", "settled_run")
    plan = plan.join(changed, on=["campaign", "item_id"], how="left", maintain_order="left").with_columns(
        pl.when(pl.col("settled_run").is_not_null())
        .then(pl.format("{}; changed since settled in run {}", pl.col("reason"),
                        pl.col("settled_run").str.slice(0, 8)))
        .otherwise(pl.col("reason")).alias("reason")).drop("settled_run")
    done_rows = done.with_columns(
        pl.lit("done").alias("status"), pl.lit(0.0).alias("est_cost_usd"),
        pl.format("already settled in run {} (cost ${})", pl.col("settled_run").str.slice(0, 8),
                  pl.col("settled_cost").round(4)).alias("reason"),
    ).drop("settled_fp", "settled_run", "settled_cost")
    return pl.concat([plan, done_rows], how="diagonal_relaxed")


def _seed(row: dict) -> int:
    """The catalog's seed, else one derived from the fingerprint (stable across runs)."""
    return int(row["seed"]) if row["seed"] is not None else int(row["fingerprint"][:8], 16)


def clip_jobs(plan: pl.DataFrame) -> list[ClipJob]:
    """ClipJobs for the planned rows, in allocation order."""
    jobs = []
    for row in plan.filter(pl.col("status") == "planned").iter_rows(named=True):
        width, height = (int(v) for v in row["size"].split("x"))
        jobs.append(ClipJob(
            item_id=row["item_id"], campaign=row["campaign"], fingerprint=row["fingerprint"],
            provider=row["provider"], model=row["model"], width=width, height=height,
            resolution=row["resolution"], prompt=row["prompt"], negative_prompt=row["negative_prompt"],
            duration_s=row["duration_s"], trim_start_s=row["trim_start_s"], seed=_seed(row),
            image_uri=row["image_uri"], est_cost_usd=row["est_cost_usd"],
            storyboard_id=row["storyboard_id"], scene_index=row["scene_index"]))
    return jobs


def plan_ledger_rows(plan: pl.DataFrame, *, run_id: str, night: str, sandbox: bool) -> list[dict]:
    """`deferred` ledger rows for the plan's deferred items (planned ones get theirs when they run)."""
    return [ledger_row(run_id=run_id, night=night, item_id=r["item_id"], campaign=r["campaign"],
                       fingerprint=r["fingerprint"], provider=r["provider"], model=r["model"],
                       status="deferred", reason=r["reason"], sandbox=sandbox)
            for r in plan.filter(pl.col("status") == "deferred").iter_rows(named=True)]


def reject_ledger_rows(rejects: pl.DataFrame, *, run_id: str, night: str, campaign_of: Mapping[int, str],
                       sandbox: bool) -> list[dict]:
    """One `rejected` ledger row per rejected catalog row, all its problems in the reason."""
    grouped = rejects.group_by("row", maintain_order=True).agg(
        pl.col("item_id").first(), pl.format("{}: {}", "column", "reason").str.join("; ").alias("why"))
    return [ledger_row(run_id=run_id, night=night, item_id=r["item_id"], campaign=campaign_of.get(r["row"]),
                       status="rejected", reason=f"row {r['row']}: {r['why']}", sandbox=sandbox)
            for r in grouped.iter_rows(named=True)]
