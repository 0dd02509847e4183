"""`vidbatch run` as a user starts it, in a process of its own, against a closed route whose loopback
Videos API lives in the test's process (so the test sees every job the run creates, and can let
them finish or stall): for the stop, signal and fault tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import VIDEOS_API_POLICY, write_catalog
from vidbatch.sandbox import VideosSandbox

KEY_ENV = "VIDBATCH_CLI_RUN_KEY"


def closed_route_policy(path: Path, box: VideosSandbox, concurrency: int = 2) -> Path:
    """The Videos-API policy with its closed route `sora` on `box`, `concurrency` jobs in flight."""
    text = VIDEOS_API_POLICY.read_text().replace(
        'kind = "openai-videos"\n', f'kind = "openai-videos"\nbase_url = "{box.base_url}"\napi_key_env = "{KEY_ENV}"\n',
        1).replace("concurrency = 4\n", f"concurrency = {concurrency}\n", 1)
    path.write_text(text)
    return path


def high_realism_catalog(path: Path, items: int, campaign: str) -> str:
    return write_catalog(path, [{"prompt": f"wave {n}"} for n in range(items)], realism="high", duration_s=4.0,
                         campaign=campaign)


def cli_env(box: VideosSandbox, prefect_home: str, prefect_api: str | None = None, **extra: str) -> dict:
    """The environment of a `vidbatch run` child: the route's key, and the Prefect API `prefect_api`
    (a team's server) or, without one, its own temporary Prefect server in `prefect_home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return {**env, KEY_ENV: box.api_key, "PREFECT_HOME": prefect_home, "PREFECT_LOGGING_LEVEL": "WARNING", **extra}


def start_run(log: Path, catalog: str, policy: Path, out: str, env: dict) -> subprocess.Popen:
    """`vidbatch run` in its own process group (as a terminal's job is), its output in `log`."""
    return subprocess.Popen([sys.executable, "-m", "vidbatch.cli", "run", catalog, "--policy", str(policy),
                             "--out", out], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(condition, process: subprocess.Popen, log: Path, limit_s: float = 240.0) -> None:
    """Until `condition()` holds while the run goes on (the limit only matters when it fails)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def left_behind(prefect_home: str) -> list[int]:
    """Processes (a temporary Prefect server) still running with a run's PREFECT_HOME."""
    mine = f"PREFECT_HOME={prefect_home}".encode()
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mine in (entry / "environ").read_bytes().split(b"\0"):
                    alive.append(int(entry.name))
            except OSError:
                continue
    return alive
