"""The deployments in infra/prefect.yaml on a real `prefect server start` (SQLite, loopback) with a
real process worker running the flow in its own processes, checked through the Prefect API."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import REPO, DEMO_POLICY, free_port, wait_for_http, write_catalog

PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` + the `vidbatch` process pool + infra/prefect.yaml deployed + one worker."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO", "VIDBATCH_HOME": str(REPO), "VIDBATCH_TIMEZONE": "Europe/Paris",
           "VIDBATCH_NIGHTLY_ACTIVE": "false", "VIDBATCH_CATALOG": str(home / "nightly.parquet"),
           "VIDBATCH_OUT": str(home / "out"), "VIDBATCH_POLICY": str(DEMO_POLICY)}
    env.pop("PREFECT_PROFILES_PATH", None)
    logs = home / "logs"
    logs.mkdir()
    started = [subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT)]
    try:
        wait_for_http(f"{api}/health", logs / "server.log", started[0])
        for pool in ("vidbatch", "vidbatch-gpu", "vidbatch-gpu-24gb"):
            subprocess.run([PREFECT, "work-pool", "create", pool, "--type", "process"], env=env, check=True,
                           capture_output=True, cwd=REPO)
        # The team's ledger is named at deploy time only: workers learn it from the job variables.
        ledger_url = f"sqlite:///{home / 'team-ledger.db'}"
        subprocess.run([PREFECT, "--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml", "--all"],
                       env={**env, "VIDBATCH_LEDGER_URL": ledger_url}, check=True, capture_output=True, cwd=REPO)
        started.append(subprocess.Popen([PREFECT, "worker", "start", "--pool", "vidbatch", "--limit", "4"], env=env,
                                        stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT, cwd=home))
        for n in range(2):  # two "GPU boxes", one batch at a time each
            started.append(subprocess.Popen([PREFECT, "worker", "start", "--pool", "vidbatch-gpu", "--limit", "1",
                                             "--name", f"gpu-{n}"], env=env, cwd=home,
                                            stdout=open(logs / f"gpu-{n}.log", "w"), stderr=subprocess.STDOUT))
        started.append(subprocess.Popen([PREFECT, "worker", "start", "--pool", "vidbatch-gpu-24gb", "--limit", "1",
                                         "--name", "gpu-24gb"], env=env, cwd=home,
                                        stdout=open(logs / "gpu-24gb.log", "w"), stderr=subprocess.STDOUT))
        yield {"api": api, "home": home, "env": env, "logs": logs, "ledger_url": ledger_url}
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)


def team_ledger(server, **equal) -> pl.DataFrame:
    """The rows of the deployments' shared ledger whose columns equal `equal` (e.g. run_id=...)."""
    from vidbatch.ledger_store import LedgerStore

    rows = LedgerStore(server["ledger_url"]).frame()
    for column, value in equal.items():
        rows = rows.filter(pl.col(column) == value)
    return rows


def client(server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Scoped:
        def __enter__(self):
            self.settings = temporary_settings({PREFECT_API_URL: server["api"]})
            self.settings.__enter__()
            self.client = get_client(sync_client=True).__enter__()
            return self.client

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return Scoped()


def run_nightly(server, timeout=300, **parameters):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["api"]}):
        return run_deployment("produce-catalog/nightly", parameters=parameters, timeout=timeout)


def test_deployments_carry_the_schedule_time_zone_parameters_and_no_overlap(server):
    with client(server) as api:
        nightly = api.read_deployment_by_name("produce-catalog/nightly")
        adhoc = api.read_deployment_by_name("produce-catalog/adhoc")
    [schedule] = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 1 * * *", "Europe/Paris")
    assert set(nightly.parameters) == {"catalog", "out", "policy_path"}
    assert nightly.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert nightly.global_concurrency_limit.limit == 1
    assert adhoc.work_pool_name == nightly.work_pool_name == "vidbatch"
    with client(server) as api:
        gpu = api.read_deployment_by_name("render-wan/gpu")
    for deployment in (nightly, adhoc, gpu):
        assert deployment.job_variables["env"]["VIDBATCH_LEDGER_URL"] == server["ledger_url"]


def test_nightly_run_on_a_worker_retries_transient_faults_and_attaches_artifacts(server):
    write_catalog(Path(server["env"]["VIDBATCH_CATALOG"]), [
        {"item_id": "w0", "duration_s": 1.0}, {"item_id": "w1", "duration_s": 1.5},
        {"item_id": "s0", "duration_s": 4.0, "realism": "high"},
        {"item_id": "s1", "duration_s": 4.0, "realism": "high"}])
    run = run_nightly(server, sandbox=True, sandbox_latency_s=0.3,
                      sandbox_faults={"rate_limit_next": 12, "retry_after_s": 0.05})
    assert run.state.is_completed(), run.state
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId)

    with client(server) as api:
        tasks = api.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        generate = {t.name: t for t in tasks if " on " in t.name}
        histories = {name: [s.name for s in api.read_task_run_states(t.id)] for name, t in generate.items()}
        artifacts = api.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert set(generate) == {"w0 on wan", "w1 on wan", "s0 on sora", "s1 on sora"}
    assert {t.name.split(" ")[0] for t in tasks} >= {"load", "write"}
    assert not [t.name for t in tasks if t.name.startswith(("generate ", "finish "))]  # one task run a clip
    retried = [name for name, states in histories.items() if "AwaitingRetry" in states]
    assert retried and all(generate[name].run_count >= 2 for name in retried), histories
    assert all(histories[name][-1] == "Completed" for name in generate)
    assert {"campaign-report", "clips", "run-summary"} <= {a.key for a in artifacts}  # a local root: no file:// link

    assert not (Path(server["env"]["VIDBATCH_OUT"]) / "ledger.db").exists()  # the deployment's ledger, not one beside
    ledger = team_ledger(server, run_id=str(run.id))
    made_by = ledger.filter((pl.col("status") == "settled") & (pl.col("route") == "wan"))["reason"]
    pids = set(made_by.str.extract(r" on \S+:(\d+)").to_list())
    assert pids == {run.infrastructure_pid.rsplit(":", 1)[-1]} and str(os.getpid()) not in pids
    assert ledger.filter(pl.col("status") == "settled").height == 4


def test_a_second_nightly_run_waits_for_the_first(server):
    write_catalog(Path(server["env"]["VIDBATCH_CATALOG"]), [{"item_id": f"q{n}", "duration_s": 1.0} for n in range(3)])
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["api"]}):
        first = run_deployment("produce-catalog/nightly", timeout=0)
        second = run_deployment("produce-catalog/nightly", timeout=0)
    deadline = time.monotonic() + 300
    with client(server) as api:
        while True:
            runs = [api.read_flow_run(r.id) for r in (first, second)]
            if all(r.state.is_final() for r in runs):
                break
            assert time.monotonic() < deadline, [r.state for r in runs]
            time.sleep(1)
        histories = [[s.name for s in api.read_flow_run_states(r.id)] for r in runs]
    assert all(r.state.is_completed() for r in runs), histories
    waited = [h for h in histories if "AwaitingConcurrencySlot" in h]
    assert waited, histories
    one, two = sorted(runs, key=lambda r: r.start_time)
    assert two.start_time >= one.end_time  # never overlapping


def test_cli_submits_an_ad_hoc_campaign_to_the_workers(server, tmp_path):
    catalog = write_catalog(tmp_path / "adhoc.parquet", [{"item_id": "a0", "campaign": "adhoc", "duration_s": 1.0}])
    vidbatch = str(Path(sys.executable).with_name("vidbatch"))
    command = [vidbatch, "run", catalog, "--out", "adhoc-out", "--policy", str(DEMO_POLICY), "--submit", "--wait"]
    done = subprocess.run(command, env=server["env"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "of produce-catalog/adhoc: Completed" in done.stdout
    assert (tmp_path / "adhoc-out" / "assets" / "adhoc" / "a0.mp4").exists()  # relative --out made absolute

    alone = {k: v for k, v in server["env"].items() if k != "PREFECT_API_URL"}
    refused = subprocess.run(command, env=alone, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert refused.returncode == 2 and "--submit needs a Prefect server" in refused.stderr


def _gpu_policy(path: Path) -> str:
    """Wan on the GPU pool in batches of 3. The estimate is raised well above what the tiny model
    costs on a loaded 2-core CPU, so no batch runs out of its allowance (that is tested apart)."""
    text = DEMO_POLICY.read_text().replace('kind = "wan-diffusers"\n',
                                                'kind = "wan-diffusers"\nworkers = "pool"\nbatch_size = 3\n', 1)
    path.write_text(text.replace('gpu_s_per_shot = { "480p" = 8.0, "720p" = 8.0 }',
                                 'gpu_s_per_shot = { "480p" = 200.0, "720p" = 200.0 }', 1))
    return str(path)


def test_clips_render_on_the_pool_of_gpus_the_plan_placed_them_on(server, tmp_path):
    """Two pools of different cards: the tiny model fits the 24 GiB pool at 480p (the cheaper card)
    and only the 80 GiB one at 720p; each clip goes to its pool's deployment and is priced there."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    text = Path(_gpu_policy(tmp_path / "one-pool.toml")).read_text().replace("gpu_usd_per_hour = 2.50\n", "", 1)
    text += ('\n[routes.wan.pools.h100]\ngpu = "H100"\nmemory_gib = 80\nusd_per_hour = 2.50\n'
             'deployment = "render-wan/gpu"\n'
             '[routes.wan.pools.small]\ngpu = "L4"\nmemory_gib = 24\nusd_per_hour = 0.80\n'
             'deployment = "render-wan/gpu-24gb"\n')
    for model in ("tiny", "tiny-i2v"):  # 480p fits a 24 GiB card, 720p needs the 80 GiB one
        text += f'[routes.wan.models.{model}.memory]\nwhole = {{ gib = {{ "480p" = 2.0, "720p" = 30.0 }} }}\n'
    policy = tmp_path / "two-pools.toml"
    policy.write_text(text)
    items = [{"item_id": f"p{n}", "campaign": "pools", "duration_s": 1.0, "resolution": res}
             for n, res in enumerate(["480p", "720p", "480p", "720p"])]
    catalog = write_catalog(tmp_path / "pools.parquet", items)
    with temporary_settings({PREFECT_API_URL: server["api"]}):
        orchestrator = run_deployment("produce-catalog/adhoc", timeout=0, parameters={
            "catalog": catalog, "out": str(tmp_path / "out"), "policy_path": str(policy)})
    deadline = time.monotonic() + 300
    with client(server) as api:
        while not api.read_flow_run(orchestrator.id).state.is_final():
            assert time.monotonic() < deadline
            time.sleep(1)
        final = api.read_flow_run(orchestrator.id)
        batches = api.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gpu-24gb"])))
    assert final.state.is_completed(), final.state
    on_small = sorted(j["item_id"] for run in batches for j in run.parameters["jobs"])
    assert on_small == ["p0", "p2"]
    settled = team_ledger(server, campaign="pools").filter(pl.col("status") == "settled").sort("item_id")
    assert settled["item_id"].to_list() == ["p0", "p1", "p2", "p3"]
    assert settled["price_key"].to_list() == ["tiny|480p|stock|L4|whole", "tiny|720p|stock|H100|whole"] * 2
    assert all(("on pool small (L4)" if key.endswith("L4|whole") else "on pool h100 (H100)") in reason
               for key, reason in zip(settled["price_key"], settled["reason"]))


def _kill_a_batch_mid_clip(api, server, deadline: float) -> int:
    """SIGKILL a GPU batch's process once it has settled one clip and reserved the next."""
    import signal

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    while time.monotonic() < deadline:
        ledger = team_ledger(server, campaign="gpu")
        runs = api.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gpu"])))
        for run in runs:
            if not run.state.is_running() or not run.infrastructure_pid:
                continue
            pid = run.infrastructure_pid.rsplit(":", 1)[-1]
            mine = ledger.filter(pl.col("reason").str.contains(f":{pid} ", literal=True)
                                 & (pl.col("status") == "settled"))
            items = [job["item_id"] for job in run.parameters["jobs"]]
            closed = ledger.filter(pl.col("status").is_in(["settled", "failed", "released"]))["reservation_id"]
            rendering = ledger.filter((pl.col("status") == "reserved") & pl.col("item_id").is_in(items)
                                      & ~pl.col("reservation_id").is_in(closed.implode()))
            if mine.height >= 1 and rendering.height:  # this batch has a clip in flight
                os.kill(int(pid), signal.SIGKILL)
                return int(pid)
        time.sleep(0.1)
    raise AssertionError("no GPU batch was caught mid-clip")


def test_wan_batches_run_on_gpu_workers_load_once_and_survive_a_dead_worker(server, tmp_path):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    items = [{"item_id": f"g{n}", "campaign": "gpu", "duration_s": 1.0} for n in range(5)]
    catalog = write_catalog(tmp_path / "gpu.parquet", items)
    out = tmp_path / "out"
    with temporary_settings({PREFECT_API_URL: server["api"]}):
        orchestrator = run_deployment("produce-catalog/adhoc", timeout=0, parameters={
            "catalog": catalog, "out": str(out), "policy_path": _gpu_policy(tmp_path / "gpu.toml")})
    deadline = time.monotonic() + 400
    with client(server) as api:
        killed = _kill_a_batch_mid_clip(api, server, deadline)
        while not api.read_flow_run(orchestrator.id).state.is_final():
            assert time.monotonic() < deadline
            time.sleep(1)
        final = api.read_flow_run(orchestrator.id)
        batches = api.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gpu"])))
    assert final.state.is_completed(), final.state
    states = {run.parameters["batch"]: run.state.name for run in batches}
    assert sorted(states.values()).count("Crashed") == 1, states
    assert any(key.endswith("-a2") and name == "Completed" for key, name in states.items()), states

    ledger = team_ledger(server, campaign="gpu")
    settled = ledger.filter(pl.col("status") == "settled")
    assert sorted(settled["item_id"]) == [f"g{n}" for n in range(5)]  # one clip each: nothing made twice
    assert all("(model loads in this process: 1)" in r for r in settled["reason"])  # once per batch process
    made_in = settled["reason"].str.extract(r" on \S+:(\d+)")
    assert made_in.n_unique() == 3 and str(killed) in made_in.to_list()  # two batches + the resubmission
    abandoned = ledger.filter(pl.col("reason").str.contains("mid-clip", literal=True))
    assert abandoned.height == 1 and abandoned["status"][0] == "failed"  # the killed clip's reservation
    reserved = ledger.filter(pl.col("status") == "reserved")
    closing = ledger.filter(pl.col("status").is_in(["settled", "failed", "released"]))
    assert sorted(reserved["reservation_id"]) == sorted(closing["reservation_id"])  # every bracket closed
    spent = closing.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum()
    assert spent <= 3.0 + 1e-9  # the demo policy's campaign cap, the crashed clip's charge included
    assert all((out / "assets" / "gpu" / f"g{n}.mp4").exists() for n in range(5))


def _wait_for(predicate, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll_s)


def _review_runs(api):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return api.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["pending"])))


def test_clips_await_review_in_a_suspended_run_resumed_with_input_through_the_api(server, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    policy = tmp_path / "review.toml"
    text = DEMO_POLICY.read_text().replace('source = "tiny"', 'source = "testsrc"', 1)  # the review, not the model
    policy.write_text(text + '\n[review]\ncampaigns = ["spring"]\n')
    catalog = write_catalog(tmp_path / "spring.parquet", [
        {"item_id": "s0", "storyboard_id": "sb", "scene_index": 0, "duration_s": 1.0},
        {"item_id": "s1", "storyboard_id": "sb", "scene_index": 1, "duration_s": 1.0},
        {"item_id": "r0", "duration_s": 1.0}], campaign="spring")
    out = tmp_path / "out"
    parameters = {"catalog": catalog, "out": str(out), "policy_path": str(policy)}
    with temporary_settings({PREFECT_API_URL: server["api"]}):
        first = run_deployment("produce-catalog/adhoc", parameters=parameters, timeout=300)
    assert first.state.is_completed(), first.state
    assert not (out / "assets" / "spring").exists()  # held, not delivered
    with client(server) as api:
        review = _wait_for(lambda: [r for r in _review_runs(api) if r.state.is_paused()], 120, "a suspended review")[0]
        assert review.state.name == "Suspended"
        assert sorted(review.parameters["items"]) == ["spring/r0", "spring/s0", "spring/s1"]
        artifacts = api.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[review.id])))
        assert {"review-pending", "review-clips"} <= {a.key for a in artifacts}
        with temporary_settings({PREFECT_API_URL: server["api"]}):
            resume_flow_run(review.id, run_input={"reviewer": "ann", "clips": [
                {"campaign": "spring", "item_id": "s0", "verdict": "approve"},
                {"campaign": "spring", "item_id": "s1", "verdict": "approve"},
                {"campaign": "spring", "item_id": "r0", "verdict": "reject", "note": "too dark",
                 "prompt": "a brighter cat on the beach"}]})
        done = _wait_for(lambda: (r := api.read_flow_run(review.id)).state.is_final() and r, 180, "the review run")
        assert done.state.is_completed(), done.state
    ledger = team_ledger(server, campaign="spring")
    decided = ledger.filter(pl.col("status").is_in(["approved", "review_rejected"])).sort("item_id")
    assert decided.select("item_id", "status", "reviewer", "prompt").rows() == [
        ("r0", "review_rejected", "ann", "a brighter cat on the beach"), ("s0", "approved", "ann", None),
        ("s1", "approved", "ann", None)]
    assert decided.filter(pl.col("status") == "review_rejected")["reason"].to_list() == ["too dark"]
    assert (out / "assets" / "spring" / "s0.mp4").exists() and not (out / "assets" / "spring" / "r0.mp4").exists()

    with temporary_settings({PREFECT_API_URL: server["api"]}):
        second = run_deployment("produce-catalog/adhoc", parameters=parameters, timeout=300)
    assert second.state.is_completed(), second.state
    assert (out / "assets" / "spring" / "storyboards" / "sb.mp4").exists()  # stitched once both were approved
    ledger = team_ledger(server, campaign="spring")
    assert sorted(ledger.filter(pl.col("status") == "settled")["item_id"]) == ["r0", "r0", "s0", "s1"]
    held = ledger.filter(pl.col("status") == "awaiting_review")
    assert sorted(held["item_id"]) == ["r0", "r0", "s0", "s1"]  # r0 made again once, awaiting review again
    with client(server) as api:
        assert len(_review_runs(api)) == 2  # the second run asked for the new clip's review


def test_a_failed_item_fails_the_submitted_run_exits_1_and_the_automation_calls_the_webhook(server, tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from prefect.blocks.webhook import Webhook
    from prefect.settings import PREFECT_API_URL, temporary_settings

    calls = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    listener = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        with temporary_settings({PREFECT_API_URL: server["api"]}):
            Webhook(method="POST", url=f"http://127.0.0.1:{listener.server_port}/hook", allow_private_urls=True,
                    headers={"Content-Type": "application/json"}).save("vidbatch-alerts", overwrite=True)
        vidbatch = str(Path(sys.executable).with_name("vidbatch"))
        applied = subprocess.run([vidbatch, "automations", "apply"], env=server["env"], capture_output=True,
                                 text=True, timeout=120, cwd=tmp_path)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert applied.stdout.count("automation vidbatch-") == 5
        catalog = write_catalog(tmp_path / "bad.parquet", [
            {"item_id": "ok0", "campaign": "alerts", "duration_s": 1.0},
            {"item_id": "bad0", "campaign": "alerts", "realism": "high", "duration_s": 4.0,
             "prompt": "something forbidden"}])
        command = [vidbatch, "run", catalog, "--out", "alerts-out", "--policy", str(DEMO_POLICY), "--sandbox",
                   "--submit", "--wait"]
        faults = json.dumps({"reject_prompt": "forbidden"})
        done = subprocess.run(command + ["--sandbox-faults", faults], env=server["env"], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr  # as a local run of the same catalog exits
        assert "Failed" in done.stdout and "1 item(s)" in done.stdout
        hooked = _wait_for(lambda: [c for c in calls if c.get("item_id") == "bad0"], 90, "the webhook call")
        assert "alerts/bad0 failed on route sora" in hooked[0]["text"] and "sk-" not in hooked[0]["text"]
        _wait_for(lambda: [c for c in calls if c["event"] == "vidbatch.night.finished"], 60, "the night's alert")
    finally:
        listener.shutdown()


def test_cancel_in_prefect_stops_a_workers_run_at_once_and_gives_its_slots_back(server, tmp_path):
    """Issue 28: Cancel in the UI while a submitted run has 2 closed-route jobs in flight (of 12). The
    worker's runner sends SIGTERM; the run creates no other job, keeps the 2 jobs' reservations
    open for the next run, gives its Prefect slots back, and ends Cancelled."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling

    policy = tmp_path / "policy.toml"
    text = DEMO_POLICY.read_text().replace('kind = "openai-videos"\n', 'kind = "openai-videos"\nconcurrency = 2\n', 1)
    policy.write_text(re.sub(r"(night_usd|campaign_usd) = [\d.]+", r"\1 = 100.0", text))
    catalog = write_catalog(tmp_path / "cancel.parquet", [{"item_id": f"c{n}", "campaign": "cancel", "duration_s": 4.0,
                                                           "realism": "high"} for n in range(12)])
    with temporary_settings({PREFECT_API_URL: server["api"]}):
        run = run_deployment("produce-catalog/adhoc", timeout=0, parameters={
            "catalog": catalog, "out": str(tmp_path / "out"), "policy_path": str(policy), "sandbox": True,
            "sandbox_latency_s": 600.0})
    deadline = time.monotonic() + 300  # limits that only matter when they fail
    with client(server) as api:
        while team_ledger(server, run_id=str(run.id)).filter(pl.col("status") == "submitted").height < 2:
            assert time.monotonic() < deadline and not api.read_flow_run(run.id).state.is_final()
            time.sleep(0.5)
        time.sleep(1.0)  # both slots held by running jobs: no create can be on the wire
        api.set_flow_run_state(run.id, Cancelling(), force=True)
        while not (state := api.read_flow_run(run.id).state).is_final():
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert state.is_cancelled(), state
    ledger = team_ledger(server, run_id=str(run.id))
    assert ledger.filter(pl.col("status") == "deferred").height == 0  # all 12 planned: the caps hold them
    assert ledger.filter(pl.col("status") == "submitted").height == 2  # not one job after the cancel
    assert ledger.filter(pl.col("status") == "reserved").height == 2  # 12 planned, only the two in flight reserved
    assert ledger.filter(pl.col("status").is_in(["released", "failed", "settled"])).height == 0  # both stay open
    from vidbatch.ledger_store import LedgerStore

    assert LedgerStore(server["ledger_url"]).slots_held("vidbatch-sora-sandbox-jobs") == 0  # given back at once
