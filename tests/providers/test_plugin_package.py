"""A provider kind from an out-of-tree package (tests/providers/acme_plugin: its own pyproject.toml
and entry point), installed by pip into a site folder of its own, then used as a user would:
`vidbatch routes`, `vidbatch plan` and a small `vidbatch run`. A provider that breaks the contract
is refused by name before anything runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ledger_of, write_catalog

PLUGIN = Path(__file__).with_name("acme_plugin")
VIDBATCH = str(Path(sys.executable).with_name("vidbatch"))
POLICY = """
[caps]
night_usd = 5.0
campaign_usd = 5.0
item_usd = 1.0
timezone = "UTC"

[routing]
prefer = { low = ["acme"], medium = ["acme"], high = ["acme"] }

[routes.acme]
kind = "acme-video"
usd_per_s = 0.05
"""


def pip_install(package: Path, scratch: Path) -> Path:
    """`package` installed the way pip installs one (built from its pyproject.toml, with the locked
    setuptools, from a copy: setuptools builds in place), into a site folder of its own under
    `scratch` that only the commands below put on sys.path."""
    import shutil

    source = shutil.copytree(package, scratch / "source")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(scratch / "site"), str(source)], check=True, capture_output=True, cwd=source)
    return scratch / "site"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return pip_install(PLUGIN, tmp_path_factory.mktemp("acme"))


def vidbatch(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(site), "PREFECT_LOGGING_LEVEL": "WARNING", **env}
    return subprocess.run([VIDBATCH, *args], capture_output=True, text=True, env=environment, timeout=600)


def test_an_installed_plugin_kind_is_listed_planned_and_run(site, tmp_path, team_prefect_api):
    assert list(site.glob("acme_vidbatch-1.0.dist-info/entry_points.txt"))  # installed by pip, not laid by hand
    policy = tmp_path / "acme.toml"
    policy.write_text(POLICY)
    routes = vidbatch(site, "routes", "--policy", str(policy), "--json")
    assert routes.returncode == 0, routes.stderr
    [row] = [json.loads(line) for line in routes.stdout.splitlines()]
    assert (row["route"], row["kind"]) == ("acme", "acme-video")
    assert row["capabilities"] == {"max_clip_s": 4.0, "max_footage_s": 4.0, "image_input": False, "remix": False,
                                   "extend": False, "loras": [], "resolutions": ["480p", "720p"]}

    catalog = write_catalog(tmp_path / "c.parquet", [{"item_id": "a0", "duration_s": 2.0},
                                                     {"item_id": "a1", "duration_s": 3.0},
                                                     {"item_id": "long", "duration_s": 9.0}], campaign="acme")
    plan = vidbatch(site, "plan", catalog, "--policy", str(policy))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "2 planned, est $0.25; 1 deferred" in plan.stdout  # priced by the plugin's own expressions
    planned = pl.read_parquet(tmp_path / "vidbatch-plan.parquet").filter(pl.col("item_id") == "long")
    assert "acme makes at most 4.0 s, the item needs 9.0 s" in planned["reason"][0]  # its capabilities, read

    run = vidbatch(site, "run", catalog, "--policy", str(policy), "--out", str(tmp_path / "out"),
                   PREFECT_API_URL=team_prefect_api)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "out" / "assets" / "acme" / "a0.mp4").exists()
    ledger = ledger_of(tmp_path / "out")
    settled = ledger.filter(pl.col("status") == "settled")
    assert sorted(settled["item_id"]) == ["a0", "a1"] and set(settled["route"]) == {"acme"}
    spent = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum()
    assert spent == pytest.approx(5 * 0.05)  # what its clips cost, in vidbatch's ledger


def test_a_plugin_provider_that_breaks_the_contract_is_named_before_anything_runs(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text((PLUGIN / "pyproject.toml").read_text())
    source = (PLUGIN / "acme_vidbatch.py").read_text()
    # written from an older README: no `capabilities`, and max_footage_s as an attribute
    (broken / "acme_vidbatch.py").write_text(source.replace(
        "self.capabilities = Capabilities(max_clip_s=settings.clip_s, max_footage_s=settings.clip_s)",
        "self.max_footage_s = settings.clip_s"))
    folder = pip_install(broken, tmp_path / "install")
    policy = tmp_path / "acme.toml"
    policy.write_text(POLICY)
    routes = vidbatch(folder, "routes", "--policy", str(policy))
    assert routes.returncode == 2 and "Traceback" not in routes.stderr, routes.stdout + routes.stderr
    assert ("route 'acme' (kind acme-video): its provider has no `capabilities` (a vidbatch.providers.Capabilities)"
            in routes.stdout + routes.stderr)
