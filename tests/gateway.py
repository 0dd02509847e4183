"""The real LiteLLM proxy (infra/gateway.lock, in its own virtualenv `.venv-gateway`, which the test
command installs) started in front of a loopback Videos API, as a studio puts it in front of a paid
one. The config is the one the README ships (`infra/litellm.yaml`): create retries off."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, wait_for_http

MASTER_KEY = "sk-gateway-master-0123456789"  # what vidbatch sends the gateway
UPSTREAM_KEY = "sk-upstream-secret-9876543210"  # what the gateway sends the service: vidbatch never sees it
CONFIG = REPO / "infra" / "litellm.yaml"


def litellm_binary() -> Path | None:
    found = Path(os.environ.get("VIDBATCH_GATEWAY_VENV", REPO / ".venv-gateway")) / "bin" / "litellm"
    return found if found.exists() else None


@contextmanager
def litellm_proxy(upstream_base_url: str, workdir: Path):
    """The LiteLLM proxy on loopback forwarding sora-2 / sora-2-pro to `upstream_base_url`; yields
    its base URL (…/v1). Skipped where the gateway is not installed, failed in CI."""
    binary = litellm_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("the LiteLLM proxy is missing: infra/dev.sh test installs it into .venv-gateway")
        pytest.skip("no LiteLLM proxy (.venv-gateway): run the tests through infra/dev.sh test")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PREFECT_"))},
           "UPSTREAM_BASE_URL": upstream_base_url, "UPSTREAM_API_KEY": UPSTREAM_KEY,
           "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "NO_DOCKER": "1"}
    for attempt in (1, 2):
        # A port picked free can be taken by another worker's server before the proxy binds it: a
        # proxy that does not come up gets one more start on another port (both logs are kept).
        port, log_path = free_port(), workdir / f"litellm-{attempt}.log"
        log = log_path.open("w")
        proxy = subprocess.Popen([str(binary), "--config", str(CONFIG), "--host", "127.0.0.1", "--port", str(port),
                                  "--num_workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        try:  # its first import compiles much: a roomy limit, which only matters when it fails
            wait_for_http(f"http://127.0.0.1:{port}/health/liveliness", log_path, proxy, timeout_s=180)
        except pytest.fail.Exception:
            _stop(proxy, log)
            if attempt == 2:
                raise
            continue
        break
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proxy, log)


def _stop(proxy: subprocess.Popen, log) -> None:
    proxy.terminate()
    try:
        proxy.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proxy.kill()
    log.close()


def billed_by_prompt(box) -> dict[str, float]:
    """What the service billed, per prompt (each test item has its own)."""
    out: dict[str, float] = {}
    for record in box.billing():
        out[record["prompt"]] = out.get(record["prompt"], 0.0) + record["usd"]
    return out
