"""The campaign report of a run: static HTML beside its outputs, and Prefect artifacts that point at it.

Written to `<out>/runs/<run_id>/report/index.html` with the contact sheets next to it. In the
Prefect UI the run gets a markdown artifact (totals, spend against caps, storyboards), a table
artifact (every clip) and a link artifact to the report.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from vidbatch import layout
from vidbatch.policy import Policy
from vidbatch.report_html import REPORT_ITEMS, first_to_look_at, relative_link, report_html, spend_chart_svg
from vidbatch.storage import OutputRoot

__all__ = ["write_report"]


def _key_of(root: OutputRoot, uri: str | None) -> str | None:
    """The key of a URI under `root` (None when it is elsewhere or missing)."""
    base = root.key_uri("")
    if uri is None or not uri.startswith(base):
        return None
    return uri[len(base):].lstrip("/")


def _href_column(root: OutputRoot, report_key: str, frame: pl.DataFrame, column: str) -> pl.Series:
    return pl.Series([relative_link(report_key, _key_of(root, uri)) for uri in frame[column].to_list()],
                     dtype=pl.String)


def _markdown(summary: dict, spend: pl.DataFrame, policy: Policy, boards: pl.DataFrame, uri: str) -> str:
    lines = [f"# vidbatch run {summary['run_id'][:8]} (night {summary['night']})", "",
             f"Estimated ${summary['est_cost_usd']:.2f}, actual ${summary['cost_usd']:.2f}. "
             f"Items: {', '.join(f'{k} {v}' for k, v in sorted(summary['status_counts'].items()))}.", "",
             "| campaign | spent tonight | cap |", "|---|---:|---:|"]
    for campaign, usd in spend.group_by("campaign").agg(pl.col("actual_usd").sum()).sort("campaign").iter_rows():
        lines.append(f"| {campaign} | ${usd:.2f} | ${policy.caps.for_campaign(campaign):.2f} |")
    lines.append(f"| **night** | ${float(spend['actual_usd'].sum()):.2f} | ${policy.caps.night_usd:.2f} |")
    if boards.height:
        lines += ["", "| storyboard | status | why |", "|---|---|---|"]
        lines += [f"| {r['storyboard_id']} | {r['status']} | {r['reason']} |" for r in boards.iter_rows(named=True)]
    lines += ["", f"Report: `{uri}`"]
    return "\n".join(lines)


@task(name="write-report", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def write_report(root: OutputRoot, summary: dict, items: pl.DataFrame, boards: pl.DataFrame,
                 tonight: pl.DataFrame, policy: Policy, workdir: Path) -> str:
    """Write the report and attach the artifacts; returns the report's URI.

    `items`: the run's final item table with cost_usd, qa, storyboard_id, asset_uri, sheet_uri.
    `boards`: storyboard rows with mode, seconds, asset_uri, sheet_uri. `tonight`: tonight's money
    by campaign and provider across every run (LedgerStore.spend): what the caps measure."""
    key = layout.report(summary["run_id"])
    spend = tonight.select("campaign", "provider", "actual_usd")
    campaigns = sorted(set(items["campaign"].drop_nulls().to_list()) | set(spend["campaign"].to_list()))
    chart = spend_chart_svg(spend, {c: policy.caps.for_campaign(c) for c in campaigns}, policy.caps.night_usd)
    page_items = items.with_columns(_href_column(root, key, items, "asset_uri").alias("asset_href"),
                                    _href_column(root, key, items, "sheet_uri").alias("sheet_href"),
                                    pl.col("storyboard_id").alias("storyboard"))
    page_boards = boards.with_columns(_href_column(root, key, boards, "asset_uri").alias("asset_href"),
                                      _href_column(root, key, boards, "sheet_uri").alias("sheet_href"))
    page = workdir / "report.html"
    page.write_text(report_html(summary, page_items, page_boards, chart))
    uri = root.put_file(page, key)
    create_markdown_artifact(_markdown(summary, spend, policy, boards, uri), key="campaign-report",
                             description="vidbatch: totals, spend against the caps, storyboards")
    listed = first_to_look_at(items, REPORT_ITEMS)
    more = f"; the first {listed.height} of {items.height} (all in the run's items.parquet)" \
        if listed.height < items.height else ""
    create_table_artifact(listed.select("item_id", "campaign", "provider", "model", "status", "est_cost_usd",
                                        "cost_usd", "qa", "reason").to_dicts(),
                          key="clips", description=f"the run's items: route, status, cost, QA{more}")
    create_link_artifact(uri if "://" in uri else Path(uri).resolve().as_uri(), link_text="campaign report (HTML)",
                         key="report-link", description="the run's HTML report")
    return uri
