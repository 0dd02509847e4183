"""The GPU batch flow in-process (real Prefect API, test-pattern stand-in for the GPU)."""

import polars as pl
import pytest

from tests.conftest import DEMO_POLICY, ledger_of
from vidbatch.flows.render_wan import render_wan
from vidbatch.in_process import InProcess
from vidbatch.providers.testsrc import TestsrcProvider
from vidbatch.runs import ClipJob
from vidbatch.storage import open_root
from vidbatch.tasks.outcomes import OUTCOME_SCHEMA
from vidbatch.layout import batch_table
from vidbatch.tasks.workers import batch_key, batches_of, by_deployment

pytestmark = pytest.mark.usefixtures("prefect_api")


def job(n: int, **extra) -> ClipJob:
    return ClipJob(item_id=f"b{n}", campaign="c", fingerprint=f"fp{n}", route="wan", model="tiny", width=256,
                   height=144, resolution="480p", prompt="a dog", negative_prompt="", duration_s=1.0,
                   trim_start_s=0.0, seed=n, image_uri=None, est_cost_usd=0.01, **extra)


def on_gpu(gpu) -> InProcess:
    """The batch's Wan route rendered by `gpu` (the test pattern in the GPU's place)."""
    return InProcess(providers={"wan": lambda pol: gpu})


def test_batches_are_stable_per_night_items_and_attempt():
    jobs = [job(n) for n in range(7)]
    assert [len(b) for b in batches_of(jobs, 3)] == [3, 3, 1]
    assert batch_key("2026-11-24", jobs[:3], 1) == batch_key("2026-11-24", list(reversed(jobs[:3])), 1)
    assert batch_key("2026-11-24", jobs[:3], 1) != batch_key("2026-11-24", jobs[:3], 2)
    assert batch_key("2026-11-24", jobs[:3], 1) != batch_key("2026-11-25", jobs[:3], 1)
    changed = [jobs[0].model_copy(update={"fingerprint": "other"}), *jobs[1:3]]
    assert batch_key("2026-11-24", changed, 1) != batch_key("2026-11-24", jobs[:3], 1)


def test_each_clip_goes_to_the_deployment_of_the_pool_the_plan_placed_it_on():
    from tests.test_wan_fit import TWO
    from vidbatch.providers.wan import KIND

    settings = KIND.run_settings(TWO)
    assert settings.pool_deployments == {"rtx4090": "render-wan/rtx4090", "h100": "render-wan/h100"}
    jobs = [job(0, pool="rtx4090"), job(1, pool="h100"), job(2, pool="rtx4090"), job(3)]
    sent = by_deployment(jobs, settings)
    assert {to: [j.item_id for j in js] for to, js in sent.items()} == {
        "render-wan/rtx4090": ["b0", "b2"], "render-wan/h100": ["b1"], "render-wan/gpu": ["b3"]}


def test_a_resubmitted_batch_renders_nothing_twice_and_delivers_what_was_paid_for(tmp_path):
    gpu = TestsrcProvider()
    out = tmp_path / "out"
    jobs = [job(n).model_dump(mode="json") for n in range(3)]
    args = dict(out=str(out), run_id="run1", night="2026-11-24", allowance_usd=0.03, policy_path=str(DEMO_POLICY))
    assert render_wan(jobs=jobs, batch="k-a1", **args, in_process=on_gpu(gpu)) == 3
    assert sorted(gpu.calls) == ["b0", "b1", "b2"]  # each once, in any order (4 threads)
    (out / "assets" / "c" / "b1.mp4").unlink()  # paid and settled, but the worker died before delivering
    assert render_wan(jobs=jobs, batch="k-a2", **args, in_process=on_gpu(gpu)) == 3
    assert sorted(gpu.calls) == ["b0", "b1", "b2"]  # nothing rendered again
    assert (out / "assets" / "c" / "b1.mp4").exists()
    rows = open_root(str(out)).read_parquet(batch_table("run1", "k-a2"), OUTCOME_SCHEMA)
    details = dict(zip(rows["item_id"], rows["detail"]))
    assert details["b0"] == details["b2"] == "finished by an earlier attempt of this batch"
    assert details["b1"].startswith("delivered from its stored clip (paid earlier, not paid again)")
    ledger = ledger_of(out)
    assert ledger.filter(pl.col("status") == "settled").height == 3


def test_a_batch_never_spends_beyond_its_allowance(tmp_path):
    gpu = TestsrcProvider(usd_per_s=0.02)  # each clip costs $0.02 against a $0.01 estimate
    jobs = [job(n).model_dump(mode="json") for n in range(3)]
    made = render_wan(jobs=jobs, batch="tight", out=str(tmp_path / "out"), run_id="run2", night="2026-11-24",
                      allowance_usd=0.035, policy_path=str(DEMO_POLICY), in_process=on_gpu(gpu))
    assert made == 2 and len(gpu.calls) == 2  # $0.04 spent: the third reservation is refused, not rendered
    rows = open_root(str(tmp_path / "out")).read_parquet(batch_table("run2", "tight"), OUTCOME_SCHEMA)
    assert rows.filter(pl.col("outcome") == "deferred").height == 1


def test_a_resubmitted_batch_after_a_crash_stays_within_the_night_cap(tmp_path):
    """A crashed batch's clip is charged its estimate (rented GPU time); its resubmission gets a
    fresh allowance, but the night cap counts that charge: the cap is never exceeded."""
    from tests.conftest import policy_file
    from vidbatch.ledger import ledger_row, new_reservation_id
    from vidbatch.ledger_store import open_ledger
    from vidbatch.tasks.workers import _close_abandoned

    policy = policy_file(tmp_path / "p.toml", night_usd=0.02, campaign_usd=1.0, item_usd=0.01)
    out = open_root(str(tmp_path / "out"))
    crashed = job(0)
    open_ledger(out).append([ledger_row(run_id="run3", night="2026-11-24", item_id="b0", campaign="c",
                                       fingerprint="fp0", route="wan", model="tiny", status="reserved",
                                       est_cost_usd=0.01, reservation_id=new_reservation_id())])
    _close_abandoned(open_ledger(out), "run3", [crashed], "GPU batch k-a1 ended Crashed mid-clip")
    gpu = TestsrcProvider(usd_per_s=0.009)  # a 17-frame clip costs about $0.0096 of its $0.01 estimate
    jobs = [job(n).model_dump(mode="json") for n in range(2)]
    made = render_wan(jobs=jobs, batch="k-a2", out=str(out.uri), run_id="run3", night="2026-11-24",
                      allowance_usd=0.02, policy_path=policy, in_process=on_gpu(gpu))
    assert made == 1 and len(gpu.calls) == 1  # $0.01 charged + one $0.01 clip: the night cap is full
    committed = open_ledger(out).committed("2026-11-24")
    assert committed.night <= 20_000  # micro-dollars
    deferred = ledger_of(out.uri).filter(pl.col("status") == "deferred")["reason"].to_list()
    assert len(deferred) == 1 and "night cap $0.02 reached" in deferred[0]
    from vidbatch import layout
    from vidbatch.tasks.outcomes import OUTCOME_SCHEMA

    outcomes = out.read_parquet(layout.batch_table("run3", "k-a2"), OUTCOME_SCHEMA)
    assert outcomes.filter(pl.col("outcome") == "deferred").select("cap", "cap_usd").rows() == [("night cap", 0.02)]
