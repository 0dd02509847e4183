"""The demo's policy on `--sandbox`: one catalog across all four kinds (the tiny Wan pipeline on
CPU, hosted Wan, an OpenAI-Videos endpoint, Google Veo through google-genai), each paid route on a
loopback server of its own; and high realism falling back from sora to veo when sora is gone."""

import polars as pl
import pytest

from tests.conftest import SHIPPED_DEMO_POLICY, ledger_of, produce, write_catalog

pytestmark = pytest.mark.usefixtures("prefect_api")

DEMO = str(SHIPPED_DEMO_POLICY)  # the demo's own policy: wan, wan-hosted, sora, veo


def test_one_sandbox_run_makes_clips_on_all_four_kinds_and_each_is_priced_as_planned(tmp_path):
    rows = [{"realism": "low", "duration_s": 2.0, "prompt": "a paper boat"},                # wan first for low
            {"realism": "medium", "duration_s": 4.0, "prompt": "a market at dawn"},         # wan-hosted for medium
            {"realism": "high", "duration_s": 4.0, "prompt": "rain on a window"},           # sora for high
            {"realism": "high", "duration_s": 4.0, "prompt": "a glass of water", "route": "veo"}]  # asked for
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    summary = produce(catalog, out=str(tmp_path / "out"), policy_path=DEMO, sandbox=True, sandbox_latency_s=0.3)
    assert summary["state"] == "COMPLETED" and summary["status_counts"] == {"finished": 4}, summary
    ledger = ledger_of(tmp_path / "out")
    settled = ledger.filter(pl.col("status") == "settled")
    assert dict(zip(settled["item_id"], settled["route"])) == {"i0": "wan", "i1": "wan-hosted", "i2": "sora",
                                                                  "i3": "veo"}
    assert ledger["sandbox"].all()  # nothing paid: every row marked
    paid = dict(ledger.filter(pl.col("status").is_in(["paid", "settled"])).group_by("route")
                .agg(pl.col("cost_usd").sum()).iter_rows())
    assert paid["veo"] == pytest.approx(4 * 0.40)        # one 4 s Veo 3.1 clip, per second
    assert paid["wan-hosted"] == pytest.approx(5 * 0.036)  # Wan 2.1 makes 5 s clips
    assert paid["sora"] == pytest.approx(4 * 0.30)
    veo_rows = ledger.filter(pl.col("route") == "veo")
    assert "submitted" in veo_rows["status"].to_list()  # the operation's name was journalled before waiting
    assert veo_rows.filter(pl.col("status") == "submitted")["job_id"][0].startswith("projects/")


def test_high_realism_falls_back_from_sora_to_veo_when_sora_is_gone(tmp_path):
    rows = [{"realism": "high", "duration_s": 4.0, "prompt": "a lighthouse in fog"}]
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    summary = produce(catalog, out=str(tmp_path / "out"), policy_path=DEMO, sandbox=True, sandbox_latency_s=0.3,
                      sandbox_faults={"api_gone": True})
    assert summary["state"] == "COMPLETED" and summary["status_counts"] == {"finished": 1}, summary
    assert "sora" in summary["unavailable"]
    (moved,) = summary["fell_back"]
    assert "prefers sora; sora is unavailable" in moved["reason"] and moved["reason"].endswith("fell back to veo")
    settled = ledger_of(tmp_path / "out").filter(pl.col("status") == "settled")
    assert settled["route"].to_list() == ["veo"] and settled["cost_usd"].sum() == 0.0  # paid in its paid row
