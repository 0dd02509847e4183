"""The catalog flow against a real Prefect API (temporary server), end to end."""

import polars as pl
import pytest

from tests.conftest import ledger_of, DEMO_POLICY, write_catalog
from vidbatch.errors import CatalogError, ContentRejected, TransientProviderError
from tests.conftest import produce
from vidbatch.media import probe
from vidbatch.providers.testsrc import TestsrcProvider

pytestmark = pytest.mark.usefixtures("prefect_api")



def run(tmp_path, rows, provider=None, **kwargs):
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    overrides = {"wan": (lambda policy: provider)} if provider else {}
    return produce(catalog, out=str(tmp_path / "out"), policy_path=str(DEMO_POLICY), **kwargs, providers=overrides)


def test_real_tiny_wan_end_to_end_with_trim_ledger_and_rerun(tmp_path):
    rows = [{"duration_s": 1.0}, {"duration_s": 1.5, "trim_start_s": 0.5, "trim_end_s": 2.0},
            {"realism": "high"}, {"duration_s": -2.0}]
    summary = run(tmp_path, rows)
    assert summary["status_counts"] == {"finished": 2, "deferred": 1}
    assert summary["rejected_rows"] == 1 and summary["failed"] == []
    out = tmp_path / "out"
    for item, frames in (("i0", 16), ("i1", 24)):
        info = probe(out / "assets" / "c1" / f"{item}.mp4")
        assert (info.width, info.height, info.frames) == (256, 144, frames)
    ledger = ledger_of(out)
    settled = ledger.filter(pl.col("status") == "settled")
    assert sorted(settled["item_id"]) == ["i0", "i1"]
    assert settled["sha256"].str.len_chars().to_list() == [64, 64]
    assert ledger.filter(pl.col("status") == "reserved").height == 2
    deferred = ledger.filter(pl.col("status") == "deferred").row(0, named=True)
    assert deferred["item_id"] == "i2" and "sora is unavailable (no API key" in deferred["reason"]
    assert "row 3: duration_s" in ledger.filter(pl.col("status") == "rejected")["reason"][0]
    rejects = pl.read_parquet(out / "runs" / summary["run_id"] / "rejects.parquet")
    assert rejects["row"].to_list() == [3]
    assert abs(summary["cost_usd"] - ledger.filter(pl.col("status") == "paid")["cost_usd"].sum()) < 1e-12
    assert settled["cost_usd"].sum() == 0.0  # once paid, the money is in the paid row
    assert ledger.filter(pl.col("status") == "delivered")["asset_uri"].str.ends_with(".mp4").all()

    again = run(tmp_path, rows)
    assert again["status_counts"] == {"done": 2, "deferred": 1}
    assert again["cost_usd"] == 0.0
    assert ledger_of(out).filter(pl.col("status") == "settled").height == 2  # nothing paid twice


def test_transient_errors_are_retried_and_each_attempt_is_bracketed(tmp_path):
    flaky = TestsrcProvider(failures=[TransientProviderError("503 from the GPU pool", cost_usd=0.01)])
    summary = run(tmp_path, [{}], provider=flaky)
    assert summary["status_counts"] == {"finished": 1}
    assert flaky.calls == ["i0", "i0"]
    ledger = ledger_of(tmp_path / "out").sort("created_at")
    assert ledger["status"].to_list() == ["reserved", "failed", "reserved", "paid", "settled", "delivered"]
    assert ledger["attempt"].to_list() == [1, 1, 2, 2, 2, 2]
    assert ledger.filter(pl.col("status") == "failed")["cost_usd"].to_list() == [0.01]
    settled_cost = ledger.filter(pl.col("status") == "paid")["cost_usd"][0]
    assert abs(summary["cost_usd"] - (0.01 + settled_cost)) < 1e-12


def test_content_rejection_is_not_retried_and_fails_only_that_item(tmp_path):
    picky = TestsrcProvider(failures=[ContentRejected("prompt violates policy")])
    summary = run(tmp_path, [{}, {}], provider=picky)
    assert summary["status_counts"] == {"finished": 1, "failed": 1}
    assert len(picky.calls) == 2  # one call each: no retry for the rejected one
    assert "prompt violates policy" in summary["failed"][0]["reason"]
    failed = ledger_of(tmp_path / "out").filter(pl.col("status") == "failed")
    assert failed.height == 1 and failed["reason"][0].startswith("ContentRejected")


def test_changed_item_is_regenerated_and_unchanged_is_not(tmp_path):
    provider = TestsrcProvider()
    run(tmp_path, [{}, {}], provider=provider)
    summary = run(tmp_path, [{}, {"prompt": "a dog in the city"}], provider=provider)
    assert summary["status_counts"] == {"done": 1, "finished": 1}
    assert sorted(provider.calls) == ["i0", "i1", "i1"]


def test_campaign_filter_and_unusable_catalog(tmp_path):
    summary = run(tmp_path, [{"campaign": "a"}, {"campaign": "b"}], provider=TestsrcProvider(), campaign="b")
    assert summary["status_counts"] == {"finished": 1}
    (tmp_path / "bad.parquet").write_text("item_id,prompt\n")
    with pytest.raises(CatalogError, match="not a Parquet file"):
        produce(str(tmp_path / "bad.parquet"), out=str(tmp_path / "out"), policy_path=str(DEMO_POLICY))


def test_a_campaign_lora_runs_through_the_flow_and_a_new_file_remakes_only_its_items(tmp_path):
    from tests.providers.test_wan_lora import make_lora

    lora = make_lora(tmp_path / "brand", 1) / "pytorch_lora_weights.safetensors"
    policy = tmp_path / "policy.toml"
    policy.write_text(DEMO_POLICY.read_text() + f'\n[routes.wan.loras.brand]\nsource = "{lora}"\n')
    catalog = write_catalog(tmp_path / "catalog.parquet", [{"duration_s": 1.0}, {"duration_s": 1.0, "lora": "brand"}])

    def make():
        return produce(catalog, out=str(tmp_path / "out"), policy_path=str(policy))

    assert make()["status_counts"] == {"finished": 2}
    settled = ledger_of(tmp_path / "out").filter(pl.col("status") == "settled")
    reasons = dict(zip(settled["item_id"], settled["reason"]))
    assert "LoRA brand" in reasons["i1"] and "LoRA" not in reasons["i0"]
    assert make()["status_counts"] == {"done": 2}  # same file: nothing made again
    lora.write_bytes((make_lora(tmp_path / "brand-v2", 2) / "pytorch_lora_weights.safetensors").read_bytes())
    assert make()["status_counts"] == {"done": 1, "finished": 1}  # a new file: only its item again
    remade = ledger_of(tmp_path / "out").filter(pl.col("status") == "settled")
    assert remade["item_id"].to_list().count("i1") == 2 and remade["item_id"].to_list().count("i0") == 1


def test_every_finished_clip_is_scored_into_the_runs_items_table(tmp_path):
    summary = run(tmp_path, [{"duration_s": 1.0, "prompt": "a red car on the road"}, {"duration_s": 1.5}])
    assert summary["status_counts"] == {"finished": 2}
    items = pl.read_parquet(tmp_path / "out" / "runs" / summary["run_id"] / "items.parquet").sort("item_id")
    assert items["score_verdict"].to_list() == [None, None]
    for column in ("adherence", "coherence", "drift", "motion", "jitter"):
        assert items[column].is_not_null().all(), column
    assert items["coherence"].is_between(-1.0, 1.0).all() and (items["motion"] >= 0).all()
    curves = items["drift_curve"]
    assert curves.list.len().to_list() == [8, 8] and curves.list.first().to_list() == [1.0, 1.0]
    delivered = ledger_of(tmp_path / "out").filter(pl.col("status") == "delivered").sort("item_id")
    assert delivered["score_model"].to_list() == ["tiny-clip", "tiny-clip"]  # the ledger keeps them (0010)
    for column in ("adherence", "coherence", "drift", "motion", "jitter"):
        assert delivered[column].to_list() == items[column].to_list(), column
