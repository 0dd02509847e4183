"""The review gate's rules: what a verdict must say, and the rows it becomes (pure)."""

import polars as pl

from vidbatch.ledger import Reservation, ledger_frame
from vidbatch.review import ClipVerdict, verdict_rows

HELD = Reservation(run_id="r1", night="2026-12-01", item_id="s0", campaign="spring", fingerprint="f" * 16,
                   route="wan", model="tiny", est_cost_usd=0.01, reservation_id="res1")


def pending() -> pl.DataFrame:
    return ledger_frame([HELD.awaiting_review("/out/review/spring/s0/res1.mp4", "a" * 64,
                                              "QA passed; awaiting review")])


def test_verdicts_become_rows_on_the_held_clips_reservation():
    rows, problems = verdict_rows(pending(), [
        ClipVerdict(campaign="spring", item_id="s0", verdict="reject", note=" too dark ", prompt="brighter"),
        ClipVerdict(campaign="spring", item_id="s1", verdict="undecided")], reviewer="ann", run_id="rv")
    assert problems == []
    [row] = rows
    assert (row["status"], row["reason"], row["prompt"], row["reviewer"], row["reservation_id"], row["run_id"]) == (
        "review_rejected", "too dark", "brighter", "ann", "res1", "rv")


def test_hostile_or_incomplete_verdicts_are_refused_by_name():
    cases = [ClipVerdict(campaign="spring", item_id="s0", verdict="reject", note=""),
             ClipVerdict(campaign="spring", item_id="s0", verdict="approve", prompt="x"),
             ClipVerdict(campaign="spring", item_id="s0", verdict="reject", note="ok", prompt="a\x00b"),
             ClipVerdict(campaign="spring", item_id="s0", verdict="reject", note="bad\x1b[2J", prompt=""),
             ClipVerdict(campaign="spring", item_id="../../etc", verdict="approve"),
             ClipVerdict(campaign="other", item_id="s0", verdict="approve")]
    for verdict in cases:
        rows, problems = verdict_rows(pending(), [verdict], reviewer=None, run_id="rv")
        assert rows == [] and len(problems) == 1, (verdict, problems)
    rows, problems = verdict_rows(pending(), [ClipVerdict(campaign="spring", item_id="s0", verdict="approve")],
                                  reviewer="ann\x00", run_id="rv")
    assert rows == [] and "control character" in problems[0]


def test_clips_for_a_person_come_worst_first_unscored_last():
    import polars as pl

    from vidbatch.triage import worst_first

    clips = pl.DataFrame({"item_id": ["old", "fine", "bad", "unscored", "tied"],
                          "coherence": [0.9, 0.99, 0.5, None, 0.9], "adherence": [0.3, 0.3, 0.3, None, 0.1]})
    assert worst_first(clips)["item_id"].to_list() == ["bad", "tied", "old", "fine", "unscored"]
