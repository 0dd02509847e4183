"""What the Prefect API says about a run: only real failures are Failed, deferrals are named
non-failure states, nothing is left waiting, task runs name item and route, runs carry tags and
a readable name, and deferrals and fallbacks reach the run's logs."""

import time

import pytest

from tests.conftest import DEMO_POLICY, produce, write_catalog
from vidbatch.errors import ContentRejected, ProviderUnavailable
from vidbatch.providers.testsrc import TestsrcProvider

pytestmark = pytest.mark.usefixtures("prefect_api")


class Picky(TestsrcProvider):
    """A Wan stand-in that refuses one prompt (moderation) and loses its model for another."""

    def generate(self, request, workdir, journal=None):
        if "forbidden" in request.prompt:
            raise ContentRejected("prompt violates policy")
        if "dark" in request.prompt:
            raise ProviderUnavailable("model wan-x was removed")
        return super().generate(request, workdir, journal)


def _final_task_runs(client, flow_run_id, timeout_s=60):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    while True:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if all(r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.3)


def _logs(client, flow_run_id, timeout_s=30):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout_s
    while True:
        lines = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]
        if any("deferred" in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def test_a_failed_item_fails_the_run_and_a_deferral_is_no_failure(tmp_path):
    from prefect.client.orchestration import get_client

    catalog = write_catalog(tmp_path / "c.parquet", [
        {"duration_s": 1.0}, {"duration_s": 1.0, "prompt": "something forbidden"},
        {"duration_s": 1.0, "prompt": "a dark alley"}, {"realism": "high"}], campaign="spring")
    summary = produce(catalog, out=str(tmp_path / "out"), policy_path=str(DEMO_POLICY),
                      providers={"wan": lambda _: Picky()})
    assert summary["state"] == "FAILED"
    assert summary["state_message"].startswith("1 item(s) and 0 storyboard(s) failed")
    assert summary["status_counts"] == {"finished": 1, "failed": 1, "deferred": 2}
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(summary["run_id"])
        tasks = {t.name: t for t in _final_task_runs(client, summary["run_id"])}
        logs = _logs(client, summary["run_id"])
    assert flow_run.state.is_failed() and "1 item(s)" in flow_run.state.message
    assert flow_run.name.startswith(f"{summary['night']} spring")
    assert {"vidbatch", f"night:{summary['night']}", "campaign:spring"} <= set(flow_run.tags)
    states = {name: (t.state.type.value, t.state.name) for name, t in tasks.items()}
    assert states["i0 on wan"] == ("COMPLETED", "Completed")  # paid step, cut, QA and delivery: one task run
    assert states["i1 on wan"] == ("FAILED", "Failed")  # the one real failure
    assert states["i2 on wan"] == ("COMPLETED", "Deferred")  # route gone, no fallback: not a failure
    assert [n for n, (kind, _) in states.items() if kind == "FAILED"] == ["i1 on wan"]
    # one task run an item planned to be made (i3 was deferred at plan time), nothing else per item
    per_item = sorted(n for n in tasks if n.startswith(("i", "generate ", "finish ")))
    assert per_item == ["i0 on wan", "i1 on wan", "i2 on wan"]
    assert all(t.state.is_final() for t in tasks.values())  # nothing NotReady or Pending left behind
    assert any("i2 deferred: wan unavailable (model wan-x was removed)" in line for line in logs), logs
    assert any("route sora unavailable" in line for line in logs)


def test_a_run_with_only_deferrals_completes(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{"duration_s": 1.0, "prompt": "a dark alley"}])
    summary = produce(catalog, out=str(tmp_path / "out"), policy_path=str(DEMO_POLICY),
                      providers={"wan": lambda _: Picky()})
    assert summary["state"] == "COMPLETED" and summary["status_counts"] == {"deferred": 1}
