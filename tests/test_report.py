"""The run's summaries and HTML report, at any size. Pure: frames in, text out."""

import polars as pl

from vidbatch.ledger import SPEND_COLUMNS
from vidbatch.report import needs_a_look, plan_groups
from vidbatch.report_html import REPORT_ITEMS, report_html, spend_chart_svg
from vidbatch.tasks.outcomes import SUMMARY_ROWS, run_summary

SUMMARY = {"run_id": "r" * 32, "night": "2026-11-25", "out": "/tmp/out", "sandbox": False,
           "status_counts": {"finished": 1}, "est_cost_usd": 1.0, "cost_usd": 0.5}
BOARD_SCHEMA = {"campaign": pl.String, "storyboard_id": pl.String, "scene_count": pl.Int64, "status": pl.String,
                "reason": pl.String, "mode": pl.String, "seconds": pl.Float64, "asset_href": pl.String,
                "sheet_href": pl.String}


def items(n: int, status=lambda i: "finished", **fields) -> pl.DataFrame:
    base = {"campaign": "c", "route": "wan", "model": "tiny", "reason": "fits Wan", "est_cost_usd": 0.01,
            "cost_usd": 0.01, "qa": "passed", "storyboard": None, "asset_href": None, "sheet_href": None,
            "fell_back": False, "qa_regenerated": False}
    return pl.DataFrame([{**base, "item_id": f"i{i}", "status": status(i), **fields} for i in range(n)])


def no_boards() -> pl.DataFrame:
    return pl.DataFrame(schema=BOARD_SCHEMA)


def test_catalog_text_is_escaped_in_the_page_and_the_chart():
    evil = "<script>alert(1)</script>"
    frame = items(1, campaign=evil, reason=f"because {evil}", item_id=evil)
    spend = pl.DataFrame({"campaign": [evil], "route": ["wan"], "actual_usd": [0.5]})
    chart = spend_chart_svg(spend, {evil: 2.0}, 5.0)
    page = report_html({**SUMMARY, "out": evil}, frame, no_boards(), chart)
    assert "<script>alert" not in page and "<script>alert" not in chart
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;" in chart
    assert page.count("<script>") == 1  # the page's own image check, nothing from the catalog
    assert chart in page and "<svg" in page  # the chart is embedded as markup, not escaped twice


def test_a_big_run_lists_the_items_that_need_a_look_first_and_points_at_the_rest():
    frame = items(REPORT_ITEMS + 700, status=lambda i: "failed" if i % 100 == 99 else "finished")
    page = report_html(SUMMARY, frame, no_boards(), "<svg></svg>")
    assert page.count('<span class="badge bad">failed</span>') == 12
    assert page.count("<tr><td>i") == REPORT_ITEMS
    assert page.index(">i99<") < page.index(">i0<")  # failures first
    assert "700 more" in page and 'href="../items.parquet"' in page


def test_a_small_run_keeps_catalog_order_and_says_nothing_of_more():
    page = report_html(SUMMARY, items(3, status=lambda i: "failed" if i == 2 else "finished"), no_boards(), "")
    assert page.index(">i0<") < page.index(">i2<") and "more (every item" not in page


def test_run_summary_lists_at_most_its_rows_and_counts_the_rest():
    n = SUMMARY_ROWS + 30
    frame = items(n, status=lambda i: "deferred" if i % 2 else "failed", reason="night cap reached")
    no_spend = pl.DataFrame(schema={"route": pl.String, **SPEND_COLUMNS})
    rejects = pl.DataFrame(schema={"row": pl.Int64})
    boards = pl.DataFrame(schema={"storyboard_id": pl.String, "status": pl.String, "reason": pl.String,
                                  "asset_uri": pl.String})
    summary = run_summary("r", "n", "/o", frame, rejects, no_spend, {}, boards, False)
    assert len(summary["failed"]) == SUMMARY_ROWS and summary["more"]["failed"] == n // 2 - SUMMARY_ROWS
    assert len(summary["deferred"]) == SUMMARY_ROWS and summary["more"]["deferred"] == n // 2 - SUMMARY_ROWS
    assert summary["status_counts"] == {"failed": n // 2, "deferred": n // 2}


def test_run_summary_lists_fallbacks_and_regenerations_by_their_flags_not_their_words():
    frame = pl.concat([items(1, item_id="moved", fell_back=True, reason="reworded: made elsewhere"),
                       items(1, item_id="again", qa_regenerated=True, qa="reworded: second seed passed"),
                       items(1, item_id="plain", reason="fell back to nothing, in words only",
                             qa="passed on regeneration")])
    no_spend = pl.DataFrame(schema={"route": pl.String, **SPEND_COLUMNS})
    boards = pl.DataFrame(schema={"storyboard_id": pl.String, "status": pl.String, "reason": pl.String,
                                  "asset_uri": pl.String})
    summary = run_summary("r", "n", "/o", frame, pl.DataFrame(schema={"row": pl.Int64}), no_spend, {}, boards, False)
    assert [row["item_id"] for row in summary["fell_back"]] == ["moved"]
    assert [row["item_id"] for row in summary["qa_regenerated"]] == ["again"]


def test_plan_groups_and_reasons_stay_small_whatever_the_plan_size():
    n = 10_000
    plan = pl.DataFrame({
        "campaign": [f"c{i % 7}" for i in range(n)], "route": ["wan" if i % 3 else "sora" for i in range(n)],
        "status": ["deferred" if i % 5 == 0 else "planned" for i in range(n)], "est_cost_usd": [0.5] * n,
        "item_id": [f"i{i}" for i in range(n)],
        "reason": [f"{i % 9 + 0.5} s is longer than one coherent Wan shot; night cap $500.00 reached"
                   if i % 5 == 0 else "fits" for i in range(n)]})
    rejects = pl.DataFrame({"row": [3, 3, 8], "item_id": ["x", "x", None], "column": ["aspect", "prompt", "item_id"],
                            "reason": ["must be 16:9", "is empty", "is missing"]})
    groups = plan_groups(plan)
    assert groups.height == 7 * 2 * 2 and groups["items"].sum() == n
    assert groups["est_usd"].sum() == n * 0.5
    look, totals = needs_a_look(plan, rejects, limit=10)
    assert totals == {"deferred": n // 5, "rejected": 2}
    kinds = look.to_dicts()
    assert kinds[0]["items"] == n // 5 and kinds[0]["first items"] == "i0, i5, i10"  # numbers aside, one kind
    assert {k["reason (of the first)"] for k in kinds if k["status"] == "rejected"} == {
        "aspect: must be 16:9; prompt: is empty", "item_id: is missing"}


def test_the_caps_that_deferred_items_are_read_from_data_never_from_words():
    """A cap that deferred items at planning (the plan's `cap`) or when reserving (the outcome's)
    becomes one notice per cap and scope; a reason that only mentions a cap is no cap."""
    from tests.conftest import catalog, priced, videos_api_policy
    from vidbatch.catalog import validate_catalog
    from vidbatch.planner import Committed, plan_catalog
    from vidbatch.policy import Caps
    from vidbatch.report import run_outcomes
    from vidbatch.tasks.events import cap_events
    from vidbatch.tasks.outcomes import OUTCOME_SCHEMA, outcome_row

    base = videos_api_policy()
    policy = base.model_copy(update={"caps": Caps(**{**base.caps.model_dump(), "night_usd": 1.0})})
    rows = [{"campaign": "a", "priority": 9}, {"campaign": "b", "priority": 9},
            {"campaign": "a", "realism": "high", "duration_s": 8.0},
            {"campaign": "b", "realism": "high", "duration_s": 8.0}]
    valid, _ = validate_catalog(catalog(rows))
    plan = plan_catalog(valid, policy, priced(policy), committed=Committed(night=900_000))
    assert plan.filter(pl.col("status") == "deferred")["item_id"].sort().to_list() == ["i2", "i3"]

    class Job:
        def __init__(self, item_id, campaign):
            self.item_id, self.campaign = item_id, campaign

    made = [outcome_row(Job("i0", "a"), "deferred", "deferred: campaign cap $0.25 reached", cap="campaign cap",
                        cap_usd=0.25),  # refused when reserving
            outcome_row(Job("i1", "b"), "deferred", "deferred: the words say night cap $9.00 but no cap refused it")]
    items = run_outcomes(plan, pl.DataFrame(made, schema=OUTCOME_SCHEMA))
    got = {e["resource_id"]: e for e in cap_events("2026-12-07", items)}
    assert set(got) == {"vidbatch.cap.night.2026-12-07", "vidbatch.cap.campaign.a"}
    night = got["vidbatch.cap.night.2026-12-07"]["payload"]
    assert night["cap"] == "night cap $1.00" and night["deferred_items"] == 2 and night["campaign"] == "a, b"
    assert got["vidbatch.cap.campaign.a"]["payload"]["first_items"] == ["i0"]
    assert items.filter(pl.col("item_id") == "i1")["cap"].to_list() == [None]


def test_each_clips_scores_are_columns_and_its_drift_curve_a_small_plot():
    frame = pl.concat([
        items(1, adherence=0.312, coherence=0.97, drift=0.4, motion=1.25, jitter=0.05,
              drift_curve=[1.0, 0.9, 0.7, 0.6], score_verdict=None),
        items(1, item_id="bad", adherence=None, coherence=None, drift=None, motion=None, jitter=None,
              drift_curve=None, score_verdict="not scored: cannot decode bad.mp4"),
    ], how="diagonal_relaxed")
    page = report_html(SUMMARY, frame, no_boards(), "<svg></svg>")
    assert "<td>0.31</td><td>0.97</td><td>1.25<br><small>jitter 0.05</small></td><td>0.40<br><svg class=drift" in page
    assert 'points="0.0,1.0 21.3,2.6 42.7,5.8 64.0,7.4"' in page  # falling as the clip drifts
    assert "<td>—</td><td>—</td><td>—</td><td>—<br><br><small>not scored: cannot decode bad.mp4</small>" in page
    assert "adh." in report_html(SUMMARY, items(1), no_boards(), "<svg></svg>")  # a run without scores renders
