"""Three routes of three kinds in one catalog run: the first choice goes dark mid-run, items move
along the policy's order, and each server's bill equals the ledger's money for its route."""

import re

import polars as pl
import pytest

from tests.conftest import SHIPPED_DEMO_POLICY, closed_provider, ledger_of, write_catalog
from tests.conftest import produce
from vidbatch.policy import load_policy
from vidbatch.providers.dashscope import DashScopeProvider
from vidbatch.providers.testsrc import TestsrcProvider
from vidbatch.sandbox import VideosSandbox
from vidbatch.sandbox.dashscope import DashScopeSandbox

pytestmark = pytest.mark.usefixtures("prefect_api")


def policy_text() -> str:
    text = SHIPPED_DEMO_POLICY.read_text()
    for key, value in (("night_usd", 20.0), ("campaign_usd", 20.0)):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    return re.sub(r"^prefer = .*$", 'prefer = { low = ["sora", "wan-hosted", "wan"], medium = ["sora", "wan-hosted", '
                  '"wan"], high = ["sora", "wan-hosted", "wan"] }', text, count=1, flags=re.M)


def test_the_first_route_goes_dark_and_items_move_along_the_order_paid_once(tmp_path):
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(policy_text())
    policy = load_policy(policy_path)
    rows = [{"realism": "medium", "duration_s": 3.0, "prompt": f"scene {n}", "priority": 10 - n} for n in range(6)]
    rows.append({"realism": "medium", "duration_s": 3.0, "prompt": "scene in 720p", "resolution": "720p",
                 "priority": 0})  # last: hosted Wan's 720p model is gone, which darkens that route too
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    wan = TestsrcProvider(id="wan")
    with VideosSandbox(latency_s=0.3, poll_after_ms=50) as videos, \
            DashScopeSandbox(latency_s=0.3) as hosted:
        videos.faults.gone_after_submits = 2      # healthy at planning; the endpoint goes dark after two jobs
        hosted.faults.gone_models = {"wan2.1-t2v-plus"}
        settings = policy.routes["wan-hosted"].model_copy(update={"base_url": hosted.base_url, "poll_interval_s": 0.05})
        bindings = {"sora": lambda pol: closed_provider(videos),
                    "wan-hosted": lambda pol: DashScopeProvider(settings, "wan-hosted", api_key=hosted.api_key,
                                                                sandbox=True),
                    "wan": lambda pol: wan}
        summary = produce(catalog, out=str(tmp_path / "out"), policy_path=str(policy_path), providers=bindings)
        videos_bill, hosted_bill = videos.total_billed_usd(), hosted.total_billed_usd()
        videos_prompts = [job.prompt for job in videos.jobs.values()]
        hosted_prompts = [task.prompt for task in hosted.tasks.values()]

    assert summary["status_counts"] == {"finished": 7}
    ledger = ledger_of(tmp_path / "out")
    settled = ledger.filter(pl.col("status") == "settled")
    where = dict(zip(settled["item_id"], settled["route"]))
    assert sorted(where) == [f"i{n}" for n in range(7)]                # each item settled once
    assert sum(p == "sora" for p in where.values()) == 2                # what the endpoint made before it went
    assert where["i6"] == "wan" and "wan-hosted" in where.values()      # along the order: hosted, then Wan
    made = videos_prompts + hosted_prompts + [f"scene {n}" for n in range(6) if f"i{n}" in wan.calls] + \
        (["scene in 720p"] if "i6" in wan.calls else [])
    assert len(made) == len(set(made)) == 7                             # no item made (or paid) twice
    paid = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))
    by_route = dict(paid.group_by("route").agg(pl.col("cost_usd").sum()).iter_rows())
    assert by_route["sora"] == pytest.approx(videos_bill) and videos_bill > 0
    assert by_route["wan-hosted"] == pytest.approx(hosted_bill) and hosted_bill > 0
    moved = {d["item_id"]: d["reason"] for d in summary["fell_back"]}
    assert "sora unavailable" in moved["i6"] and "fell back to wan-hosted" in moved["i6"]
    assert "wan-hosted unavailable" in moved["i6"] and moved["i6"].endswith("fell back to wan")
