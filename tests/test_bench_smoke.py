"""Benchmarks stay alive: each script below runs at a tiny size and prints its figures (no timing
is asserted; bench/RESULTS.md holds the measured ones)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

TINY = [("closed_route.py", ["2", "1", "0.2"]), ("plan_throughput.py", ["1000"])]


@pytest.mark.parametrize("script,args", TINY, ids=[name for name, _ in TINY])
def test_a_bench_runs_at_its_tiny_size(script, args, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(ch.isdigit() for ch in done.stdout), done.stdout
