"""Shared fixtures: a real Prefect API for the session, temporary homes, small catalogs."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[1]
DEMO_POLICY = REPO / "tests" / "two-routes-policy.toml"  # the demo's routes wan and sora
SHIPPED_DEMO_POLICY = REPO / "catalogs" / "demo-policy.toml"  # the demo itself: wan, wan-hosted, sora, veo
VIDEOS_API_POLICY = REPO / "catalogs" / "videos-api-policy.toml"  # production Wan + a `sora` route on the Videos API


# The README's test command runs the suite on several workers (pytest-xdist, `--dist loadgroup`).
# A module whose fixture starts a server for the whole module runs on one worker, so that server
# starts once; the rest is spread test by test.
ONE_WORKER = {"tests/infra/test_server_deployments.py", "tests/providers/test_gateway.py",
              "tests/providers/test_wan_lora.py", "tests/providers/test_wan22.py",
              "tests/providers/test_wan_profiles.py"}
# Tests that compile the tiny Wan model run one after another on one worker: the first pays
# inductor's build, the others load it from the run's cache (pytest_configure). Side by side, each
# paid it again.
TOGETHER = {name: "tiny-wan-compiles" for name in (
    "tests/providers/test_wan_lora.py", "tests/providers/test_wan_profiles.py",
    "tests/test_bench_smoke.py::test_bench_runs_at_its_tiny_size[wan_speed.py]")}
# The edit loop's fast subset (`-m "not slow"`, README) leaves out what takes over ~10 s a test on
# 2 cores: whole runs through servers, processes and signals. The full command runs everything.
SLOW = {"tests/infra/test_server_deployments.py", "tests/test_bench_smoke.py", "tests/flows/test_stop.py",
        "tests/flows/test_faults.py", "tests/flows/test_lost_replies.py", "tests/flows/test_concurrent_runs.py",
        "tests/providers/test_wan_lora.py", "tests/providers/test_gateway.py",
        "tests/test_cli.py::test_a_run_of_many_clips_on_the_ephemeral_api_ends_quietly_with_every_task_run_recorded",
        "tests/flows/test_closed_route.py::test_a_429_storm_keeps_every_item_and_pays_each_once",
        "tests/flows/test_closed_route.py::test_a_killed_run_resumes_its_jobs_without_creating_new_ones"}


def pytest_configure(config):
    """One torch.compile cache for the whole run, as a GPU worker keeps one: the tests that compile
    the tiny Wan model (compiled profiles, LoRA hot-swap, the speed bench) each paid inductor's C++
    build again in their own TMPDIR (about 17 s of CPU each here). And one torch thread per
    process: three workers share 2 cores, and torch's own two threads each spun waiting for the
    other (the tiny Wan bench: 39 s of CPU with two, 29 s with one, the same wall time alone).
    The workers and the processes tests start inherit both from the controller."""
    if hasattr(config, "workerinput"):
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    import tempfile

    config._inductor_cache = os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="vidbatch-inductor-")


def pytest_unconfigure(config):
    folder = getattr(config, "_inductor_cache", None)
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        module, test = item.nodeid.split("::")[0], item.nodeid.split("[")[0]
        group = TOGETHER.get(item.nodeid) or TOGETHER.get(module) or (module if module in ONE_WORKER else None)
        if group:
            item.add_marker(pytest.mark.xdist_group(name=group))
        if module in SLOW or test in SLOW:
            item.add_marker(pytest.mark.slow)


def videos_api_policy():
    """The production policy with its closed route `sora` on the OpenAI Videos API contract (the
    default before Veo replaced Sora): what the planner, pricing and closed-route tests price against."""
    from vidbatch.policy import load_policy

    return load_policy(VIDEOS_API_POLICY)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect API (temporary server on loopback) for every flow test in the session."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def migrated_prefect_db(tmp_path_factory) -> Path:
    """A Prefect database already at Prefect's newest revision, built once for the session. A test
    whose `vidbatch run` child starts its own temporary Prefect server gives it a copy: building
    the schema again costs each first start about 15 s of CPU (26 s instead of 12 on this box)."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("prefect-template")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}, "PREFECT_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env, check=True,
                   capture_output=True, timeout=600)
    return home / "prefect.db"


@pytest.fixture
def team_prefect_api(prefect_api) -> str:
    """The worker's Prefect API URL, for `vidbatch run` children that run as a team's runs do, against
    a server, rather than each starting a temporary server of its own (about 12 s of CPU a start
    here). Tests of the temporary server itself use `child_prefect_home`."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture
def child_prefect_home(tmp_path, migrated_prefect_db):
    """`make(name)`: a PREFECT_HOME of its own for a child process, its database already built."""
    import shutil

    def make(name: str) -> str:
        home = tmp_path / name
        home.mkdir()
        shutil.copyfile(migrated_prefect_db, home / "prefect.db")
        return str(home)

    return make


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own output root and scratch folder."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):  # never reach a real endpoint from a test
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    """A TCP port on loopback nobody listens on now, for a server a test starts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, log: Path, process=None, timeout_s: float = 120.0) -> None:
    """Until `url` answers 200 (a server a test started): fails with the tail of its `log` when
    its `process` exits first or `timeout_s` passes (a limit that only matters when it fails)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer: {log.read_text()[-2000:] if log.exists() else 'no log'}")
        time.sleep(0.5)


def catalog(rows: list[dict], **defaults) -> pl.DataFrame:
    """A catalog frame from partial rows: required columns get harmless defaults."""
    base = {"campaign": "c1", "prompt": "a cat on the beach", "duration_s": 2.0, "aspect": "16:9",
            "realism": "low", **defaults}
    full = [{**base, "item_id": f"i{n}", **row} for n, row in enumerate(rows)]
    return pl.DataFrame(full)


def write_catalog(path: Path, rows: list[dict], **defaults) -> str:
    catalog(rows, **defaults).write_parquet(path)
    return str(path)


@pytest.fixture
def sandbox():
    """A loopback Videos API server (quick jobs) for one test."""
    from vidbatch.sandbox import VideosSandbox

    with VideosSandbox(latency_s=0.3, poll_after_ms=50) as box:
        yield box


def priced(policy, unavailable=None):
    """The policy's routes as the planner takes them: capabilities from the providers its kinds
    build (no health check: `unavailable` says which routes are down)."""
    from vidbatch.providers import build_providers, priced_routes

    return priced_routes(policy, build_providers(policy), unavailable or {})


def closed_provider(box, **route_changes):
    """The real closed-route provider (real openai SDK) pointed at a sandbox."""
    from vidbatch.providers.openai_video import OpenAIVideoProvider, make_client

    route = videos_api_policy().routes["sora"].model_copy(update=route_changes)
    return OpenAIVideoProvider(route, client=make_client(route, base_url=box.base_url, api_key=box.api_key),
                               route_id="sora")


def toml_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')


def policy_file(path: Path, night_usd=100.0, campaign_usd=50.0, item_usd=10.0, **closed) -> str:
    """The two-route test policy with roomier caps and some of the sora route's settings changed."""
    import re

    text = DEMO_POLICY.read_text()
    for key, value in (("night_usd", night_usd), ("campaign_usd", campaign_usd), ("item_usd", item_usd)):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    lines = "".join(f"{k} = {toml_value(v)}\n" for k, v in closed.items())
    marker = '[routes.sora]\nkind = "openai-videos"'
    path.write_text(text.replace(marker, marker + "\n" + lines.rstrip("\n"), 1))
    return str(path)


def ledger_of(out) -> pl.DataFrame:
    """Every ledger row of an output root, in write order, read through its store."""
    from vidbatch.ledger_store import open_ledger
    from vidbatch.storage import open_root

    return open_ledger(open_root(str(out))).frame()


@pytest.fixture()
def moto_s3(monkeypatch):
    """A real S3 HTTP server on loopback (moto) with boto3 pointed at it; yields (server, port). Its
    buckets live in this process, so a test may stop it and start another on the same port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in (("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}"), ("AWS_ACCESS_KEY_ID", "test"),
                        ("AWS_SECRET_ACCESS_KEY", "test-secret"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    yield server, port
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL cluster on loopback for the session (tests/postgres_cluster.py).
    Yields a URL prefix to add a database name to."""
    from tests.postgres_cluster import postgres_binaries, throwaway_postgres

    if postgres_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: infra/dev.sh test installs Debian's postgresql in CI")
        pytest.skip("no PostgreSQL binaries (Debian's postgresql package)")
    with throwaway_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    """A fresh, empty ledger database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    from tests.postgres_cluster import new_database

    return new_database(request.getfixturevalue("postgres_server"))


def produce(*args, providers=None, **kwargs) -> dict:
    """The catalog flow's summary, whether its run ended Completed or Failed (a failed run's
    RunFailed carries it); `state` says which. Any other error is raised, as the flow raised it.
    `providers`: route -> a factory of its stand-in, or None to leave it out (vidbatch.in_process)."""
    from vidbatch.errors import RunFailed
    from vidbatch.flows.produce_catalog import produce_catalog
    from vidbatch.in_process import InProcess

    if providers is not None:
        kwargs["in_process"] = InProcess(providers=providers)
    state = produce_catalog(*args, return_state=True, **kwargs)
    result = state.result(raise_on_failure=False)
    if isinstance(result, RunFailed):
        return {**result.summary, "state": state.type.value, "state_message": state.message}
    if isinstance(result, BaseException):
        raise result
    return {**result, "state": state.type.value}
