"""The closed route inside the catalog flow: money, resumption, fallback, rate limits."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from tests.conftest import ledger_of, REPO, closed_provider, policy_file, write_catalog
from tests.conftest import produce
from vidbatch.ledger_store import open_ledger
from vidbatch.providers.testsrc import TestsrcProvider
from vidbatch.storage import open_root

pytestmark = pytest.mark.usefixtures("prefect_api")



def run(tmp_path, rows, box, wan=None, policy=None, **kwargs):
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    bindings = {"sora": lambda pol: closed_provider(box, **_route_changes(pol)),
                "wan": lambda pol: wan or TestsrcProvider()}
    return produce(catalog, out=str(tmp_path / "out"), policy_path=policy or str(tmp_path / "p.toml"),
                           **kwargs, providers=bindings)


def _route_changes(pol) -> dict:
    return {k: getattr(pol.routes["sora"], k) for k in ("concurrency", "long_clips", "poll_deadline_s")}


def assert_paid_once(box, ledger):
    """Exactly one server job per paid call, and the ledger's money equals the server's bill."""
    prompts = [j.prompt for j in box.jobs.values() if j.kind == "create"]
    assert len(prompts) == len(set(prompts))
    paid = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]) & (pl.col("route") == "sora"))
    assert paid["cost_usd"].sum() == pytest.approx(box.total_billed_usd())


def test_both_routes_and_the_ledger_equals_the_servers_billing(tmp_path, sandbox):
    policy_file(tmp_path / "p.toml")
    rows = [{"realism": "high", "duration_s": 3.0, "prompt": "a surfer"},
            {"realism": "high", "duration_s": 14.0, "prompt": "a long take"},
            {"realism": "low", "duration_s": 1.0},
            {"realism": "high", "duration_s": 3.0, "prompt": "the surfer at night", "remix_of": "i0"},
            {"realism": "high", "duration_s": 2.0, "prompt": "something forbidden"}]
    sandbox.faults.moderate = "forbidden"
    summary = run(tmp_path, rows, sandbox)
    assert summary["status_counts"] == {"finished": 4, "failed": 1}
    assert "moderation_blocked" in summary["failed"][0]["reason"]
    ledger = ledger_of(tmp_path / "out")
    assert_paid_once(sandbox, ledger)
    sora = ledger.filter(pl.col("route") == "sora")
    assert sora["sandbox"].all()  # the sandbox marks what it made
    submitted = sora.filter(pl.col("status") == "submitted")
    assert sorted(submitted["item_id"]) == ["i0", "i1", "i1", "i3", "i4"]  # i1: a clip and an extension
    assert summary["cost_usd"] == pytest.approx(sandbox.total_billed_usd() + ledger.filter(
        pl.col("route") == "wan", pl.col("status") == "paid")["cost_usd"].sum())
    def settled_job(item_id: str) -> str:
        return sora.filter(pl.col("item_id") == item_id, pl.col("status") == "settled")["job_id"][0]

    assert sandbox.jobs[settled_job("i3")].remixed_from == settled_job("i0")


def test_model_gone_mid_run_reroutes_what_may_fall_back_and_defers_the_rest(tmp_path, sandbox):
    policy_file(tmp_path / "p.toml")
    sandbox.faults.gone_after_submits = 0  # healthy at planning; every submit then answers 404
    rows = [{"realism": "low", "duration_s": 6.0}, {"realism": "medium", "duration_s": 6.0},
            {"realism": "high", "duration_s": 3.0}]
    wan = TestsrcProvider()
    summary = run(tmp_path, rows, sandbox, wan=wan)
    assert summary["status_counts"] == {"finished": 2, "deferred": 1}
    assert sorted(wan.calls) == ["i0", "i1"]
    assert {d["item_id"] for d in summary["fell_back"]} == {"i0", "i1"}
    assert "does not serve sora-2 (404: The model 'sora-2' does not exist" in summary["fell_back"][0]["reason"]
    assert "no fallback left in the policy's order; deferred" in summary["deferred"][0]["reason"]
    ledger = ledger_of(tmp_path / "out")
    released = ledger.filter(pl.col("status") == "released")
    assert released["route"].unique().to_list() == ["sora"] and released["cost_usd"].sum() == 0.0
    assert ledger.filter(pl.col("status") == "settled")["route"].to_list() == ["wan", "wan"]
    assert sandbox.jobs == {}


def test_a_429_storm_keeps_every_item_and_pays_each_once(tmp_path, sandbox):
    policy_file(tmp_path / "p.toml", concurrency=4)
    sandbox.faults.max_in_flight, sandbox.faults.retry_after_s = 2, 0.2  # the account allows fewer jobs
    sandbox.book.latency_s = 3.0  # jobs stay in flight long enough that a third submit always meets the limit
    rows = [{"realism": "high", "duration_s": 2.0, "prompt": f"shot {n}"} for n in range(6)]
    summary = run(tmp_path, rows, sandbox)
    assert summary["status_counts"] == {"finished": 6}
    assert any(status == 429 for _, _, status in sandbox.requests)
    assert_paid_once(sandbox, ledger_of(tmp_path / "out"))
    assert len(sandbox.jobs) == 6
    assert sandbox.book.peak_in_flight() <= 4  # the policy's concurrency, whatever the account says
    store = open_ledger(open_root(str(tmp_path / "out")))
    assert store.slots_held("vidbatch-sora-jobs") == 0  # every lane gave its slot back at the run's end


def test_a_killed_run_resumes_its_jobs_without_creating_new_ones(tmp_path, sandbox, child_prefect_home):
    policy = policy_file(tmp_path / "p.toml")
    sandbox.latency_s = 120.0  # jobs stay in progress until the first run is dead
    rows = [{"realism": "high", "duration_s": 2.0, "prompt": f"shot {n}"} for n in range(2)]
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    out = tmp_path / "out"
    env = {**os.environ, "OPENAI_BASE_URL": sandbox.base_url, "OPENAI_API_KEY": sandbox.api_key,
           "PREFECT_HOME": child_prefect_home("prefect-child"), "PREFECT_API_URL": ""}
    child = subprocess.Popen([sys.executable, "-m", "vidbatch.cli", "run", catalog, "--policy", policy,
                              "--out", str(out)], env=env, cwd=REPO, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # its own temporary Prefect server starts first, on a loaded box slowly
    while time.monotonic() < deadline and child.poll() is None:
        if (out / "ledger.db").exists() and ledger_of(out).filter(pl.col("status") == "submitted").height == 2:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"first run never submitted its jobs: {child.stderr.read().decode()[-2000:]}")
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert len(sandbox.jobs) == 2 and ledger_of(out).filter(pl.col("status") == "settled").height == 0

    sandbox.latency_s = 0.3  # the jobs finished while nobody was watching
    summary = run(tmp_path, rows, sandbox, policy=policy)
    assert summary["status_counts"] == {"finished": 2}
    assert len(sandbox.jobs) == 2  # exactly one job per item on the server
    ledger = ledger_of(out)
    assert ledger.filter(pl.col("status") == "reserved").height == 2  # the resumed run reserved nothing new
    settled = ledger.filter(pl.col("status") == "settled")
    assert sorted(settled["job_id"]) == sorted(sandbox.jobs)
    assert settled["reservation_id"].sort().to_list() == ledger.filter(
        pl.col("status") == "reserved")["reservation_id"].sort().to_list()
    assert_paid_once(sandbox, ledger)
