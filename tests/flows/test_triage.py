"""Triage by scores in the catalog flow (real Prefect API, the tiny CLIP, testsrc clips): a clip
that misses a line is made again with another seed, paid and recorded like any clip, and waits for
a person when it still misses; one above every approval line skips the review it would wait for."""

import polars as pl
import pytest

from tests.conftest import ledger_of, policy_file, produce, write_catalog
from vidbatch.providers.testsrc import TestsrcProvider

pytestmark = pytest.mark.usefixtures("prefect_api")


def run(tmp_path, scores: str, extra: str = "") -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(tmp_path / "catalog.parquet", [{"item_id": "t0", "duration_s": 1.0}])
    path = tmp_path / "p.toml"
    policy_file(path, global_limits=False)
    text = path.read_text().replace('model = "tiny-clip"\n', f'model = "tiny-clip"\n{scores}\n', 1)
    path.write_text(text + extra)
    return produce(catalog, out=str(tmp_path / "out"), policy_path=str(path),
                   providers={"wan": lambda p: TestsrcProvider(), "sora": None})


def test_a_clip_below_its_floor_is_made_again_then_waits_for_a_person(tmp_path):
    summary = run(tmp_path, "lines = { coherence = 1.01 }")  # no clip is that coherent: both miss
    assert summary["status_counts"] == {"awaiting_review": 1}
    ledger = ledger_of(tmp_path / "out")
    assert ledger.filter(pl.col("status") == "reserved").height == 2  # the remake was reserved and paid
    assert ledger.filter(pl.col("status") == "settled").height == 2
    first = ledger.filter(pl.col("status") == "qa_failed")["reason"].to_list()
    assert len(first) == 1 and "passed, but its scores: coherence" in first[0] and "below its floor 1.01" in first[0]
    held = ledger.filter(pl.col("status") == "awaiting_review").row(0, named=True)
    assert "passed on regeneration (seed " in held["reason"] and "'s scores: coherence" in held["reason"]
    assert "; its scores: coherence" in held["reason"] and " too; awaiting review" in held["reason"]
    assert held["coherence"] is not None and held["score_model"] == "tiny-clip"


def test_no_regenerations_left_sends_a_missing_clip_straight_to_a_person(tmp_path):
    summary = run(tmp_path, "lines = { coherence = 1.01 }", "\n[review]\nmax_regenerations = 0\n")
    assert summary["status_counts"] == {"awaiting_review": 1}
    ledger = ledger_of(tmp_path / "out")
    assert ledger.filter(pl.col("status") == "reserved").height == 1  # nothing paid twice
    assert ledger.filter(pl.col("status") == "qa_failed").height == 0


def test_a_clip_above_every_approval_line_skips_the_review_its_campaign_needs(tmp_path):
    review_all = "\n[review]\nall = true\n"
    held = run(tmp_path / "a", "lines = { motion = 0.0 }", review_all)
    assert held["status_counts"] == {"awaiting_review": 1}  # clears its lines; its campaign needs review
    skipped = run(tmp_path / "b", "approve = { coherence = 0.5, motion = 0.0 }\napprove_skips_review = true",
                  review_all)
    assert skipped["status_counts"] == {"finished": 1}
    assert ledger_of(tmp_path / "b" / "out").filter(pl.col("status") == "delivered")["coherence"][0] >= 0.5


def test_a_remake_the_caps_refuse_defers_the_item_and_the_run_goes_on(tmp_path):
    """The campaign cap holds one clip, not its remake: the item is deferred (nothing lost, the
    first clip is paid and recorded), the run ends with its outcome, not a fault."""
    path = tmp_path / "p.toml"
    policy_file(path, campaign_usd=0.0015, global_limits=False)  # one 1 s testsrc clip: $0.00105
    text = path.read_text().replace('model = "tiny-clip"\n', 'model = "tiny-clip"\nlines = { coherence = 1.01 }\n', 1)
    path.write_text(text)
    catalog = write_catalog(tmp_path / "catalog.parquet", [{"item_id": "t0", "duration_s": 1.0}])
    summary = produce(catalog, out=str(tmp_path / "out"), policy_path=str(path),
                      providers={"wan": lambda p: TestsrcProvider(), "sora": None})
    assert summary["state"] == "COMPLETED" and summary["status_counts"] == {"deferred": 1}
    ledger = ledger_of(tmp_path / "out")
    assert ledger.filter(pl.col("status") == "settled").height == 1  # the first clip: paid, kept in the ledger
    assert "campaign cap" in ledger.filter(pl.col("status") == "deferred")["reason"][0]
