"""A stop is a stop (issue 28): SIGTERM and Ctrl-C to a real `vidbatch run`, and Cancel in Prefect.

Each run makes 12 closed-route clips through the real openai SDK against a loopback Videos API
that lives in this test's process, two jobs in flight. Jobs take far longer than the test waits,
so when the stop comes both slots are held by running jobs and no create can be on the wire:
any job the endpoint records after the stop was sent after it. Then the jobs are let finish and
the catalog is run again: it resumes the two jobs the stopped run left and makes the rest, one
job per item, and the ledger holds exactly what the endpoint billed.
"""

from __future__ import annotations

import os
import signal
import time

import polars as pl
import pytest

from tests.cli_runs import (cli_env, closed_route_policy, high_realism_catalog, left_behind, start_run,
                            wait_for)
from tests.conftest import ledger_of
from vidbatch.sandbox import VideosSandbox

ITEMS = 12


@pytest.fixture
def rig(tmp_path, child_prefect_home):
    """A Videos API sandbox whose jobs take 10 minutes, a policy whose closed route talks to it (2 in
    flight), a catalog of high-realism items, and `start(name, **env)`: a `vidbatch run`."""
    with VideosSandbox(latency_s=600.0, poll_after_ms=100) as box:
        policy = closed_route_policy(tmp_path / "policy.toml", box)
        catalog = high_realism_catalog(tmp_path / "catalog.parquet", ITEMS, "stop")
        home = child_prefect_home("prefect-home")
        out = tmp_path / "out"

        def start(name: str, **extra):
            log = tmp_path / f"{name}.log"
            return start_run(log, catalog, policy, str(out), cli_env(box, home, **extra)), log

        yield {"box": box, "start": start, "out": out, "home": home}


def _rerun_and_settle(rig) -> pl.DataFrame:
    """Let every job finish, run the catalog again, and check one job per item and ledger == billed."""
    box = rig["box"]
    box.latency_s = 0.2
    process, log = rig["start"]("rerun")
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    prompts = [job.prompt for job in box.jobs.values()]
    assert sorted(prompts) == sorted(f"wave {n}" for n in range(ITEMS)), prompts  # nothing paid twice
    ledger = ledger_of(rig["out"])
    spent = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum()
    assert spent == pytest.approx(box.total_billed_usd())
    assert ledger.filter(pl.col("status") == "settled").height == ITEMS
    return ledger


def _cancel_in_prefect(api: str) -> str:
    """Cancel the one produce-catalog run that is Running on the Prefect API, as the UI's Cancel does."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling

    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        [run] = [r for r in client.read_flow_runs(flow_run_filter=running) if "campaign:stop" in r.tags]
        client.set_flow_run_state(run.id, Cancelling(), force=True)
        return str(run.id)


def _final_state(api: str, run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


@pytest.mark.parametrize("how", ["SIGTERM", "ctrl-c", "cancel"])
def test_a_stop_stops_spending_at_once_and_the_next_run_resumes_without_paying_twice(rig, how, request):
    """SIGTERM to the process (a redeploy), Ctrl-C to its process group (a terminal), or Cancel in
    Prefect (the run uses a Prefect server here, as a team's runs do)."""
    box, extra = rig["box"], {}
    if how == "cancel":
        request.getfixturevalue("prefect_api")
        from prefect.settings import PREFECT_API_URL

        extra["PREFECT_API_URL"] = api = PREFECT_API_URL.value()
    process, log = rig["start"]("stopped", **extra)
    wait_for(lambda: len(box.jobs) == 2, process, log)  # both slots held by running jobs: no create on the wire
    time.sleep(1.0)  # the run polls them
    at_stop = set(box.jobs)
    if how == "SIGTERM":  # a worker's redeploy: the process alone
        process.send_signal(signal.SIGTERM)
    elif how == "ctrl-c":  # a terminal: the whole process group, the temporary Prefect server included
        os.killpg(process.pid, signal.SIGINT)
    else:
        run_id = _cancel_in_prefect(api)
    code = process.wait(timeout=120)
    output = log.read_text()
    assert code == {"SIGTERM": 143, "ctrl-c": 130, "cancel": 4}[how], output[-3000:]
    assert set(box.jobs) == at_stop, output[-3000:]  # not one job created after the stop
    assert "Traceback" not in output, output[-3000:]
    assert {"SIGTERM": "stopped by SIGTERM", "ctrl-c": "stopped by SIGINT", "cancel": "stopped (cancelled: Cancel in "
            "Prefect)"}[how] in output, output[-2000:]
    assert "2 job(s) left running at their providers" in output, output[-2000:]
    assert left_behind(rig["home"]) == []  # the temporary Prefect server went with the run
    if how == "cancel":
        assert _final_state(api, run_id).is_cancelled()
    ledger = ledger_of(rig["out"])
    open_jobs = ledger.filter(pl.col("status") == "submitted")
    assert open_jobs.height == 2 and ledger.filter(pl.col("status") == "released").height == 0
    _rerun_and_settle(rig)
