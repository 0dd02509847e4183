"""Benchmarks stay alive: every script in bench/ runs at a tiny size and prints its figures. No
timing is asserted (bench/RESULTS.md holds the measured figures). One test per script, each in its
own process and folder, on the worker's Prefect API (no ephemeral server to start in each); the
test command's workers spread them."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

TINY = {  # the slowest first: they run side by side, the quick ones fill in after them
    "scale.py": ["4"],
    "closed_route.py": ["2", "1", "0.2"],
    "orchestration_overhead.py": ["4"],
    "ledger_history.py": ["2000"],
    "ledger_store.py": ["20", "2000"],
    "wan_speed.py": ["--size", "tiny", "--steps", "2"],
    "device_run.py": ["--plan", "tiny", "--budget-s", "600", "--out", "wan_speed.jsonl"],
    "price_holds.py": ["4", "0.004"],
    "plan_routes.py": ["1000", "--before", "HEAD"],  # this tree as its own "before": the same decisions
    "plan_cli.py": ["2000"],
    "plan_throughput.py": ["1000"],
    "ledger_migration.py": ["1000"],
    "code_shape.py": ["--before", "HEAD"],
    "score_cost.py": ["1"],
    "stitch.py": ["2", "1", "1"],
    "stop_figures.py": ["3", "--signals", "term", "--settle", "1"],
    "ledger_import.py": ["1000", "3000"],
    "night_reservations.py": ["20", "40"],
}
NOT_SCRIPTS = {"ffmpeg_log_probe.py"}  # the earlier media reader, imported by orchestration_overhead.py


def _run(name: str, folder, api: str) -> str | None:
    """None when the script ran at its tiny size and printed figures, else what went wrong."""
    home = folder / name.removesuffix(".py")
    home.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "TMPDIR": str(home), "PREFECT_API_URL": api}
    done = subprocess.run([sys.executable, str(REPO / "bench" / name), *TINY[name]], cwd=home, env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode == 0 and any(ch.isdigit() for ch in done.stdout):
        return None
    return f"{name} {' '.join(TINY[name])}: exit {done.returncode}\n{done.stdout[-800:]}\n{done.stderr[-2000:]}"


def test_every_bench_script_has_a_tiny_size():
    assert {p.name for p in (REPO / "bench").glob("*.py")} == set(TINY) | NOT_SCRIPTS


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("name", list(TINY))
def test_bench_runs_at_its_tiny_size(tmp_path, name):
    from prefect.settings import PREFECT_API_URL

    why = _run(name, tmp_path, PREFECT_API_URL.value())
    assert why is None, why
