"""The type checker (mypy, configured in pyproject's [tool.mypy]) is clean on vidbatch, flows,
tasks and providers: strict on the pure core, the modules still listed as not clean excepted."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


def mirror(root):
    """The installed layout as symlinks: vidbatch/ with flows/, tasks/ and providers/ inside it."""
    package = root / "vidbatch"
    package.mkdir(parents=True)
    for entry in (REPO / "vidbatch").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in ("flows", "tasks", "providers"):
        (package / folder).symlink_to(REPO / folder)
    return root


@pytest.mark.slow
def test_mypy_is_clean(tmp_path):
    tree = mirror(tmp_path / "tree")
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
                           "--cache-dir", str(tmp_path / "cache"), "-p", "vidbatch"],
                          cwd=tmp_path, env={"MYPYPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
