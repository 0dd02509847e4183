"""The review gate on the embedded default: clips held after QA, verdicts from the CLI, approved
clips delivered, rejected ones made again by the next run, storyboards stitched once approved."""

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import DEMO_POLICY, ledger_of, produce, write_catalog
from vidbatch.cli import app
from vidbatch.providers.testsrc import TestsrcProvider

pytestmark = pytest.mark.usefixtures("prefect_api")


def review_policy(tmp_path, extra: str = "") -> str:
    path = tmp_path / "review.toml"
    path.write_text(DEMO_POLICY.read_text() + f'\n[review]\ncampaigns = ["spring"]\n{extra}')
    return str(path)


ROWS = [{"item_id": "s0", "campaign": "spring", "storyboard_id": "sb", "scene_index": 0, "duration_s": 1.0},
        {"item_id": "s1", "campaign": "spring", "storyboard_id": "sb", "scene_index": 1, "duration_s": 1.0},
        {"item_id": "o0", "campaign": "other", "duration_s": 1.0}]


def cli(*args):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_clips_wait_for_review_the_cli_decides_and_the_next_runs_remake_and_stitch(tmp_path):
    out, policy = str(tmp_path / "out"), review_policy(tmp_path)
    catalog = write_catalog(tmp_path / "c.parquet", ROWS)
    fake = TestsrcProvider()
    first = produce(catalog, out=out, policy_path=policy, providers={"wan": lambda _: fake})
    assert first["state"] == "COMPLETED"  # awaiting review is not a failure
    assert first["status_counts"] == {"awaiting_review": 2, "finished": 1}
    assert [b["status"] for b in first["storyboards"]] == ["blocked"]
    assert "awaiting review" in first["storyboards"][0]["reason"]
    assets = tmp_path / "out" / "assets"
    assert (assets / "other" / "o0.mp4").exists() and not (assets / "spring").exists()  # nothing delivered
    ledger = ledger_of(out)
    held = ledger.filter(pl.col("status") == "awaiting_review")
    assert sorted(held["item_id"]) == ["s0", "s1"] and held["asset_uri"].str.contains("/review/spring/").all()
    assert ledger.filter(pl.col("status") == "delivered")["item_id"].to_list() == ["o0"]

    code, text = cli("review", "--out", out)
    assert code == 0 and "2 clip(s) awaiting review" in text and "s0" in text and "s1" in text
    code, text = cli("review", "--out", out, "--json")
    listed = [json.loads(line) for line in text.splitlines()]
    assert {r["item_id"] for r in listed} == {"s0", "s1"} and all(r["route"] == "wan" for r in listed)
    assert all(r["watch"].endswith(".mp4") and r["cost_usd"] > 0 for r in listed)
    coherence = [r["coherence"] for r in listed]
    assert None not in coherence and coherence == sorted(coherence)  # scored, the least coherent first

    code, text = cli("review", "reject", "s1", "--out", out, "--reviewer", "ann")
    assert code == 2 and "--note" in text  # refused before anything is written
    code, text = cli("review", "reject", "s1", "--out", out, "--note", "  ")
    assert code == 2 and "needs --note" in text
    code, text = cli("review", "approve", "s0", "nope", "--out", out)
    assert code == 2 and "nope: no clip of it is awaiting review" in text
    assert ledger_of(out).filter(pl.col("status") == "approved").is_empty()  # a typo approves nothing
    code, text = cli("review", "approve", "s0", "--out", out, "--reviewer", "ann")
    assert code == 0 and "approved and delivered" in text
    code, text = cli("review", "reject", "s1", "--out", out, "--note", "too dark", "--prompt", "a brighter cat",
                     "--reviewer", "bob")
    assert code == 0 and "rejected s1" in text
    assert (assets / "spring" / "s0.mp4").exists() and not (assets / "spring" / "s1.mp4").exists()
    decided = ledger_of(out).filter(pl.col("status").is_in(["approved", "review_rejected"]))
    assert decided.select("item_id", "status", "reviewer", "reason", "prompt").rows() == [
        ("s0", "approved", "ann", "", None), ("s1", "review_rejected", "bob", "too dark", "a brighter cat")]
    code, text = cli("review", "approve", "s0", "--out", out)
    assert code == 2 and "spring/s0: already decided (approved by ann); nothing recorded" in text  # once, never again

    second = produce(catalog, out=out, policy_path=policy, providers={"wan": lambda _: fake})
    assert second["status_counts"] == {"awaiting_review": 1, "done": 2}  # s1 made again, held again
    assert sorted(fake.calls[:3]) == ["o0", "s0", "s1"] and fake.calls[3:] == ["s1"]  # approved: never again
    first_s1, again = [r for r in fake.requests if r.item_id == "s1"]
    assert again.prompt == "a brighter cat" and again.seed != first_s1.seed
    assert [b["status"] for b in second["storyboards"]] == ["blocked"]  # s1 awaits its second review
    code, _ = cli("review", "approve", "s1", "--out", out)
    assert code == 0

    third = produce(catalog, out=out, policy_path=policy, providers={"wan": lambda _: fake})
    assert third["status_counts"] == {"done": 3} and third["cost_usd"] == 0.0
    assert [b["status"] for b in third["storyboards"]] == ["stitched"]
    assert (assets / "spring" / "storyboards" / "sb.mp4").exists()
    report = (tmp_path / "out" / "runs" / second["run_id"] / "report" / "index.html").read_text()
    assert "awaiting_review" in report


def test_rejections_beyond_the_limit_defer_the_item_until_its_row_changes(tmp_path):
    out, policy = str(tmp_path / "out"), review_policy(tmp_path, "max_regenerations = 1\n")
    catalog = write_catalog(tmp_path / "c.parquet", ROWS[:1])
    fake = TestsrcProvider()
    for _ in range(2):
        produce(catalog, out=out, policy_path=policy, providers={"wan": lambda _: fake})
        assert cli("review", "reject", "s0", "--out", out, "--note", "no")[0] == 0
    third = produce(catalog, out=out, policy_path=policy, providers={"wan": lambda _: fake})
    assert third["status_counts"] == {"deferred": 1} and fake.calls == ["s0", "s0"]
    assert "review rejected 2 clips" in third["deferred"][0]["reason"]
    changed = write_catalog(tmp_path / "c2.parquet", [{**ROWS[0], "prompt": "a new idea"}])
    fourth = produce(changed, out=out, policy_path=policy, providers={"wan": lambda _: fake})
    assert fourth["status_counts"] == {"awaiting_review": 1}


def test_reviewers_approving_one_clip_at_once_get_one_verdict_and_the_losers_one_answer(tmp_path):
    """Issue 28: of several `review approve` of one clip at once, one wins; every other says the same
    thing (already decided, by whom) with the same exit code, whether it lost before or inside the
    ledger's transaction."""
    import subprocess
    import sys

    out = str(tmp_path / "out")
    catalog = write_catalog(tmp_path / "c.parquet", ROWS[:1])
    produce(catalog, out=out, policy_path=review_policy(tmp_path), providers={"wan": lambda _: TestsrcProvider()})
    runs = [subprocess.Popen([sys.executable, "-m", "vidbatch.cli", "review", "approve", "s0", "--out", out,
                              "--reviewer", f"r{n}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for n in range(4)]
    answers = [(run.wait(timeout=300), run.stdout.read()) for run in runs]
    winners = [text for code, text in answers if code == 0]
    assert len(winners) == 1 and "approved and delivered" in winners[0], answers
    [winner] = ledger_of(out).filter(pl.col("status") == "approved")["reviewer"].to_list()
    losers = {(code, " ".join(text.split())) for code, text in answers if code != 0}
    assert losers == {(2, f"spring/s0: already decided (approved by {winner}); nothing recorded for it")}, answers
