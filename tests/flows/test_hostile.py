"""What comes from outside stays in its place: a hostile catalog writes nothing outside --out,
endpoints that echo the request's headers leak no key anywhere, and storage that goes away mid-run
loses no money and no paid clip."""

import re
import tempfile
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import SHIPPED_DEMO_POLICY, closed_provider, ledger_of, write_catalog
from tests.conftest import produce
from vidbatch.errors import RunFault
from vidbatch.policy import load_policy
from vidbatch.providers.dashscope import DashScopeProvider
from vidbatch.providers.gemini_veo import VeoProvider
from vidbatch.providers.testsrc import TestsrcProvider
from vidbatch.sandbox import VideosSandbox
from vidbatch.sandbox.dashscope import DashScopeFaults, DashScopeSandbox
from vidbatch.sandbox.veo import VeoFaults, VeoSandbox
from vidbatch.sandbox.jobs import Faults

pytestmark = pytest.mark.usefixtures("prefect_api")
VIDEOS_KEY = "sk-videos-echo-0123456789abcdef"
HOSTED_KEY = "sk-hosted-echo-fedcba9876543210"
VEO_KEY = "veo-echo-key-5a5a5a5a5a5a5a5a"


def _policy(tmp_path: Path, prefer: str) -> Path:
    text = SHIPPED_DEMO_POLICY.read_text()
    for key, value in (("night_usd", 20.0), ("campaign_usd", 20.0)):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    text = re.sub(r"^prefer = .*$", f"prefer = {{ low = {prefer}, medium = {prefer}, high = {prefer} }}", text,
                  count=1, flags=re.M)
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def _tree(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")} if folder.exists() else set()


def test_a_hostile_catalog_writes_nothing_outside_its_output_root(tmp_path, monkeypatch):
    # This process's temporary folder is the test's own (Python caches the first one it sees, often
    # /tmp, where the suite's other workers write at the same time).
    parent, temp = tmp_path / "site", tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    (parent / "catalogs").mkdir(parents=True)
    out = parent / "out"
    rows = [{"item_id": "../../escape"}, {"item_id": "/abs/path/x"}, {"item_id": "a/b"}, {"item_id": "nul\x00x"},
            {"item_id": "x" * 5000}, {"campaign": "../../x"}, {"storyboard_id": "../../x", "scene_index": 0},
            {"image_uri": "/etc/passwd"}, {"image_uri": "../../../../etc/shadow"}, {"item_id": "fine"}]
    catalog = write_catalog(parent / "catalogs" / "hostile.parquet", rows)
    before_parent, before_temp = _tree(parent), {p.name for p in temp.iterdir()}
    wan = TestsrcProvider(id="wan")
    summary = produce(catalog, out=str(out), policy_path=str(_policy(tmp_path, '["wan"]')),
                      providers={"wan": lambda pol: wan, "sora": None, "wan-hosted": None})
    assert wan.calls == ["fine"]  # nothing rejected reached a provider
    assert summary["status_counts"] == {"finished": 1} and summary["rejected_rows"] == 9
    outside = {p for p in _tree(parent) - before_parent if not p.startswith(str(out))}
    assert outside == set()
    assert {n for n in {p.name for p in temp.iterdir()} - before_temp if n.startswith("vidbatch")} == set()
    assert not Path("/escape").exists() and not Path("/abs").exists()
    rejected = ledger_of(out).filter(pl.col("status") == "rejected")
    assert rejected.height == 9 and "\x00" not in "".join(rejected["item_id"].to_list())


@pytest.mark.parametrize("ledger_kind", ["sqlite", "postgresql"])
def test_endpoints_that_echo_the_request_headers_leak_no_key(tmp_path, monkeypatch, capfd, ledger_kind, request):
    if ledger_kind == "postgresql":
        from tests.postgres_cluster import new_database

        monkeypatch.setenv("VIDBATCH_LEDGER_URL", new_database(request.getfixturevalue("postgres_server")))
    policy_path = _policy(tmp_path, '["sora", "wan-hosted"]')
    policy = load_policy(policy_path)
    rows = [{"prompt": "refuse me, videos", "route": "sora"}, {"prompt": "fail me, videos", "route": "sora"},
            {"prompt": "refuse me, hosted", "route": "wan-hosted"},
            {"prompt": "fail me, hosted", "route": "wan-hosted"},
            {"prompt": "refuse me, veo", "route": "veo", "realism": "high", "duration_s": 4.0},
            {"prompt": "fail me, veo", "route": "veo", "realism": "high", "duration_s": 4.0}]
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    with VideosSandbox(api_key=VIDEOS_KEY, latency_s=0.2, poll_after_ms=50,
                       faults=Faults(echo_headers=True, reject_prompt="refuse me")) as videos, \
            DashScopeSandbox(api_key=HOSTED_KEY, latency_s=0.2,
                             faults=DashScopeFaults(echo_headers=True, reject_prompt="refuse me")) as hosted, \
            VeoSandbox(api_key=VEO_KEY, latency_s=0.2,
                       faults=VeoFaults(echo_headers=True, reject_prompt="refuse me", refuse="fail me")) as veo:
        videos.faults.moderate = "fail me"  # a failed job: its error text comes back through retrieve
        hosted.faults.inspect = "fail me"   # 400 DataInspectionFailed, echoed
        settings = policy.routes["wan-hosted"].model_copy(update={"base_url": hosted.base_url, "poll_interval_s": 0.05})
        veo_settings = policy.routes["veo"].model_copy(update={"base_url": veo.base_url, "poll_interval_s": 0.05})
        bindings = {"sora": lambda pol: closed_provider(videos, max_retries=0), "wan": None,
                    "wan-hosted": lambda pol: DashScopeProvider(settings, "wan-hosted", api_key=hosted.api_key),
                    "veo": lambda pol: VeoProvider(veo_settings, "veo", api_key=veo.api_key)}
        summary = produce(catalog, out=str(tmp_path / "out"), policy_path=str(policy_path), providers=bindings)
        echoed = [s for s in videos.requests + hosted.requests + veo.requests if s[2] == 400]
    assert summary["status_counts"] == {"failed": 6} and len(echoed) >= 3  # the endpoints did echo
    ledger = ledger_of(tmp_path / "out")
    reasons = " ".join(ledger["reason"].drop_nulls().to_list())
    assert "[redacted]" in reasons and "refused" in reasons
    report = Path(summary["report"]).read_text()
    captured = capfd.readouterr()
    prefect_text = _prefect_text(summary["run_id"])
    for key in (VIDEOS_KEY, HOSTED_KEY, VEO_KEY):
        for where, text in (("ledger", reasons), ("report", report), ("stdout", captured.out),
                            ("stderr", captured.err), ("Prefect", prefect_text)):
            assert key not in text, f"the key reached the {where}"


def _prefect_text(flow_run_id: str) -> str:
    """Everything Prefect's database holds about a run: logs, states of the run and its task runs, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs reach the API in batches: send what is queued first
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        flow_run = client.read_flow_run(flow_run_id)
    return "\n".join([*(log.message for log in logs), *(str(r.state.message) for r in runs),
                      str(flow_run.state.message), *(str(a.data) + str(a.description) for a in artifacts)])


def test_s3_going_away_mid_run_loses_no_money_and_the_next_run_delivers_unpaid(tmp_path, monkeypatch, moto_s3):
    import boto3
    from moto.server import ThreadedMotoServer

    server, port = moto_s3
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("VIDBATCH_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    boto3.client("s3").create_bucket(Bucket="studio")
    policy_path = _policy(tmp_path, '["sora"]')
    catalog = write_catalog(tmp_path / "catalog.parquet", [{"prompt": "shot one"}, {"prompt": "shot two"}])

    class StorageGoesAway:  # the edge that fails: S3 stops the moment the provider has made its clips
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def generate(self, request, workdir, journal=None):
            clip = self.inner.generate(request, workdir, journal)
            if not stopped:
                server.stop()
                stopped.append(True)
            return clip

    stopped: list = []

    def spent(out: str) -> float:
        ledger = ledger_of(out)
        return round(ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum(), 6)

    with VideosSandbox(latency_s=0.2, poll_after_ms=50) as videos:
        with pytest.raises(RunFault, match=r"^run \w+ stopped \(fault: the output root s3://studio/night cannot be "
                                          r"written \(EndpointConnectionError: .*\); the next run resumes"):
            produce(catalog, out="s3://studio/night", policy_path=str(policy_path),
                    providers={"sora": lambda pol: StorageGoesAway(closed_provider(videos)), "wan": None,
                               "wan-hosted": None})
        assert spent("s3://studio/night") == round(videos.total_billed_usd(), 6) > 0  # ledger = bill, between runs
        billed, jobs = videos.total_billed_usd(), len(videos.jobs)
        ledger = ledger_of("s3://studio/night")
        assert ledger.filter(pl.col("status") == "paid").height == 2
        assert ledger.filter(pl.col("status").is_in(["settled", "failed", "released"])).height == 0  # still open

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)  # S3 is back, with what it held
        server.start()
        second = produce(catalog, out="s3://studio/night", policy_path=str(policy_path),
                         providers={"sora": lambda pol: closed_provider(videos), "wan": None, "wan-hosted": None})
        assert second["status_counts"] == {"finished": 2}
        assert (videos.total_billed_usd(), len(videos.jobs)) == (billed, jobs)  # delivered, not paid again
        assert spent("s3://studio/night") == round(billed, 6)
        keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="studio")["Contents"]}
        assert {"night/assets/c1/i0.mp4", "night/assets/c1/i1.mp4"} <= keys
    server.stop()


def test_a_missing_bucket_stops_the_run_before_anything_is_spent(tmp_path, monkeypatch, moto_s3):
    """In a process of its own, as a user runs it (an in-process CliRunner shares the test process's
    log handlers, which earlier in-process runs may have bound to their own, closed, streams)."""
    import os
    import subprocess
    import sys

    monkeypatch.setenv("VIDBATCH_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    catalog = write_catalog(tmp_path / "catalog.parquet", [{}])
    result = subprocess.run([sys.executable, "-m", "vidbatch.cli", "run", catalog, "--policy",
                             str(_policy(tmp_path, '["wan"]')), "--out", "s3://no-such-bucket/x"],
                            capture_output=True, text=True, env={**os.environ, "PREFECT_HOME": str(tmp_path / "home")},
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert "bucket 'no-such-bucket' does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "prefect.db").exists()  # refused before the temporary Prefect server
