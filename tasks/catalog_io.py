"""Loading a catalog (local or s3://) and writing a run's tables next to its outputs."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from vidbatch.catalog import printable
from vidbatch.errors import CatalogError
from vidbatch.inputs import check_catalog
from vidbatch.policy import Policy
from vidbatch.providers import loras_of
from vidbatch.storage import OutputRoot, read_catalog
from vidbatch.tasks.fingerprints import fingerprinted

__all__ = ["load_catalog", "write_run_table"]


@task(
    name="load-catalog",
    task_run_name="load catalog",
    retries=2,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
    retry_condition_fn=lambda task, run, state: not isinstance(state.result(raise_on_failure=False), CatalogError),
)
def load_catalog(
    uri: str, campaign: str | None = None, policy: Policy | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, dict[int, str], pl.DataFrame]:
    """(valid rows with fingerprints, rejects, row -> campaign, rejected scenes) for one catalog.

    Rejected scenes (row, item_id, campaign, storyboard_id, scene_index) are rejected rows that
    name a storyboard: their storyboard must wait for them. `policy` names the routes a
    `route` column and the LoRAs a `lora` column may use. With `campaign`, rows of other
    campaigns are left out before validation (not rejected).
    """
    raw = read_catalog(uri)
    if campaign is not None:
        if "campaign" not in raw.columns:
            raise CatalogError(f"{uri} has no 'campaign' column to filter on")
        raw = raw.with_row_index("__pos").filter(pl.col("campaign") == campaign)
        if raw.is_empty():
            raise CatalogError(f"{uri} has no rows for campaign {campaign!r}")
        positions = raw["__pos"].to_list()
        raw = raw.drop("__pos")
    else:
        positions = list(range(raw.height))
    valid, rejects = check_catalog(
        raw,
        uri,
        list(policy.routes) if policy else None,
        list(loras_of(policy).by_name) if policy else None,
        policy.inputs.roots if policy else (),
    )
    campaigns = raw.select(printable(pl.col("campaign"), 200)).to_series().to_list()
    campaign_of = {positions[r]: campaigns[r] for r in rejects["row"].to_list()}
    # Report row numbers of the file, not of the filtered frame.
    to_file = dict(enumerate(positions))
    valid = valid.with_columns(pl.col("row").replace_strict(to_file, return_dtype=pl.Int64))
    rejects = rejects.with_columns(pl.col("row").replace_strict(to_file, return_dtype=pl.Int64))
    return fingerprinted(valid, policy), rejects, campaign_of, _rejected_scenes(raw, rejects, positions)


def _rejected_scenes(raw: pl.DataFrame, rejects: pl.DataFrame, positions: list[int]) -> pl.DataFrame:
    schema = {
        "row": pl.Int64,
        "item_id": pl.String,
        "campaign": pl.String,
        "storyboard_id": pl.String,
        "scene_index": pl.Int64,
    }
    if "storyboard_id" not in raw.columns:
        return pl.DataFrame(schema=schema)
    picked = raw.with_columns(pl.Series("row", positions, dtype=pl.Int64)).filter(
        pl.col("row").is_in(rejects["row"].implode())
    )
    return picked.select(
        pl.col(c).cast(t, strict=False) if c in picked.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in schema.items()
    ).filter(pl.col("storyboard_id").is_not_null())


@task(name="write-run-table", task_run_name="write {key}", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def write_run_table(root: OutputRoot, frame: pl.DataFrame, key: str) -> str:
    """Write a run's table (plan, rejects, manifest) as Parquet; returns its URI."""
    return root.write_parquet(frame, key)
