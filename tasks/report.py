"""The campaign report of a run: static HTML beside its outputs, and Prefect artifacts that point at it.

Written to `<out>/runs/<run_id>/report/index.html` with the contact sheets next to it. In the
Prefect UI the run gets a markdown artifact (totals, spend against caps, storyboards), a table
artifact (every clip) and a link artifact to the report.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import task
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from vidbatch.statuses import ItemStatus
from vidbatch import layout
from vidbatch.policy import Policy
from vidbatch.money import usd_text
from vidbatch.report import cents, route_summary
from vidbatch.report_html import REPORT_ITEMS, first_to_look_at, relative_link, report_html, spend_chart_svg
from vidbatch.storage import OutputRoot

__all__ = ["write_report"]


def _href_column(root: OutputRoot, report_key: str, frame: pl.DataFrame, column: str) -> pl.Series:
    return pl.Series([relative_link(report_key, root.key_of(uri)) for uri in frame[column].to_list()], dtype=pl.String)


SHEETS = 12  # contact sheets of clips awaiting review shown as images (the review run shows its own)


def _markdown(
    summary: dict, spend: pl.DataFrame, policy: Policy, boards: pl.DataFrame, uri: str, link: str | None
) -> str:
    lines = [
        f"# vidbatch run {summary['run_id'][:8]} (night {summary['night']})",
        "",
        f"Estimated {usd_text(summary['est_cost_usd'])}, actual {usd_text(summary['cost_usd'])}. "
        f"Items: {', '.join(f'{k} {v}' for k, v in sorted(summary['status_counts'].items()))}.",
        "",
        "| campaign | spent tonight | cap |",
        "|---|---:|---:|",
    ]
    for campaign, usd in spend.group_by("campaign").agg(pl.col("actual_usd").sum()).sort("campaign").iter_rows():
        lines.append(f"| {campaign} | {usd_text(usd)} | {usd_text(policy.caps.for_campaign(campaign))} |")
    lines.append(f"| **night** | {usd_text(float(spend['actual_usd'].sum()))} | {usd_text(policy.caps.night_usd)} |")
    if boards.height:
        lines += ["", "| storyboard | status | why |", "|---|---|---|"]
        lines += [f"| {r['storyboard_id']} | {r['status']} | {r['reason']} |" for r in boards.iter_rows(named=True)]
    waiting = summary["status_counts"].get(ItemStatus.AWAITING_REVIEW, 0)
    if waiting:
        lines += [
            "",
            f"**{waiting} clip(s) await review**: answer the form of the review run"
            + (f"s ({', '.join(summary['reviews'])})" if summary.get("reviews") else "")
            + f", or `vidbatch review --out {summary['out']}`.",
        ]
    lines += ["", f"Report: [{uri}]({link})" if link else f"Report (open it from this machine): `{uri}`"]
    return "\n".join(lines)


@task(name="write-report", task_run_name="write report", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def write_report(
    root: OutputRoot,
    summary: dict,
    items: pl.DataFrame,
    boards: pl.DataFrame,
    tonight: pl.DataFrame,
    run_spend: pl.DataFrame,
    policy: Policy,
    workdir: Path,
) -> str:
    """Write the report and attach the artifacts; returns the report's URI.

    `items`: the run's final item table with cost_usd, qa, storyboard_id, asset_uri, sheet_uri.
    `boards`: storyboard rows with mode, seconds, asset_uri, sheet_uri. `tonight`: tonight's money
    by campaign and route across every run (LedgerStore.spend): what the caps measure;
    `run_spend`: this run's money by route. Money is shown at cents (4 decimals at most); links
    are http(s) where the root can share one (S3: presigned), else the artifact names the path."""
    key = layout.report(summary["run_id"])
    spend = tonight.select("campaign", "route", "actual_usd")
    campaigns = sorted(set(items["campaign"].drop_nulls().to_list()) | set(spend["campaign"].to_list()))
    chart = spend_chart_svg(spend, {c: policy.caps.for_campaign(c) for c in campaigns}, policy.caps.night_usd)
    page_items = items.with_columns(
        _href_column(root, key, items, "asset_uri").alias("asset_href"),
        _href_column(root, key, items, "sheet_uri").alias("sheet_href"),
        pl.col("storyboard_id").alias("storyboard"),
    )
    page_boards = boards.with_columns(
        _href_column(root, key, boards, "asset_uri").alias("asset_href"),
        _href_column(root, key, boards, "sheet_uri").alias("sheet_href"),
    )
    page = workdir / "report.html"
    page.write_text(report_html(summary, page_items, page_boards, chart))
    uri = root.put_file(page, key)
    link = root.share_url(key)
    create_markdown_artifact(
        _markdown(summary, spend, policy, boards, uri, link),
        key="campaign-report",
        description="vidbatch: totals, spend against the caps, storyboards",
    )
    create_table_artifact(
        route_summary(items, run_spend).to_dicts(),
        key="run-summary",
        description=f"vidbatch run {summary['run_id'][:8]}: items per route and status, estimated vs actual USD",
    )
    listed = first_to_look_at(items, REPORT_ITEMS)
    more = (
        f"; the first {listed.height} of {items.height} (all in the run's items.parquet)"
        if listed.height < items.height
        else ""
    )
    scores = [pl.col(c).round(3) for c in ("adherence", "coherence", "drift", "motion") if c in listed.columns]
    create_table_artifact(
        cents(
            listed.select(
                "item_id", "campaign", "route", "model", "status", "est_cost_usd", "cost_usd", "qa", *scores, "reason"
            )
        ).to_dicts(),
        key="clips",
        description=f"the run's items: route, status, cost, QA, scores{more}",
    )
    if link:  # the UI opens http(s) links only; a local report is named in the markdown artifact
        create_link_artifact(
            link, link_text="campaign report (HTML)", key="report-link", description="the run's HTML report"
        )
    for row in items.filter(pl.col("status") == ItemStatus.AWAITING_REVIEW).head(SHEETS).iter_rows(named=True):
        sheet = root.share_url(sheet_key) if (sheet_key := root.key_of(row["sheet_uri"])) else None
        if sheet:
            create_image_artifact(image_url=sheet, description=f"awaiting review: {row['campaign']}/{row['item_id']}")
    return uri
