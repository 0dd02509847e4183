"""The vidbatch command as a user runs it."""

import json
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import DEMO_POLICY, write_catalog
from vidbatch.cli import app
from vidbatch.providers import registry
from vidbatch.providers.testsrc import TestsrcProvider


def vidbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidbatch.cli", *args], capture_output=True, text=True)


def test_plan_json_lists_items_and_rejects(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"realism": "high"}, {"aspect": "square"}])
    result = vidbatch("plan", catalog, "--policy", str(DEMO_POLICY), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_id = {line["item_id"]: line for line in lines}
    assert set(by_id["i0"]) == {"item_id", "provider", "model", "est_cost_usd", "status", "reason"}
    assert by_id["i0"]["status"] == "planned" and by_id["i0"]["provider"] == "wan"
    assert by_id["i1"]["status"] == "deferred" and "sora unavailable: no API key" in by_id["i1"]["reason"]
    assert by_id["i2"]["status"] == "rejected" and by_id["i2"]["column"] == "aspect"


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_text("not parquet"), "is not a Parquet file"),
    (lambda p: pl.DataFrame({"item_id": ["a"]}).write_parquet(p), "lacks required column"),
])
def test_unusable_catalog_exits_2_with_a_clear_message(tmp_path, make, message):
    path = tmp_path / "c.parquet"
    make(path)
    result = vidbatch("plan", str(path))
    assert result.returncode == 2 and message in result.stderr


def test_bad_policy_names_the_field(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(DEMO_POLICY.read_text().replace("night_usd = 5.0", "night_usd = -1"))
    result = vidbatch("plan", write_catalog(tmp_path / "c.parquet", [{}]), "--policy", str(policy))
    assert result.returncode == 2 and "caps.night_usd" in result.stderr


@pytest.mark.usefixtures("prefect_api")
def test_run_then_ledger(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"duration_s": 0}])
    out = str(tmp_path / "out")
    with registry.bound({"wan": lambda policy: TestsrcProvider()}):
        result = CliRunner().invoke(app, ["run", catalog, "--policy", str(DEMO_POLICY), "--out", out])
    assert result.exit_code == 0, result.output
    assert "finished: 1" in result.output and "rejected rows: 1" in result.output
    ledger = CliRunner().invoke(app, ["ledger", "--out", out, "--json"])
    rows = [json.loads(line) for line in ledger.output.splitlines()]
    assert rows[0]["clips"] == 1 and rows[0]["provider"] == "wan" and rows[0]["actual_usd"] > 0


@pytest.mark.usefixtures("prefect_api")
def test_run_exits_nonzero_when_an_item_fails(tmp_path):
    from vidbatch.errors import ContentRejected

    catalog = write_catalog(tmp_path / "c.parquet", [{}])
    with registry.bound({"wan": lambda policy: TestsrcProvider(failures=[ContentRejected("nope")])}):
        result = CliRunner().invoke(app, ["run", catalog, "--policy", str(DEMO_POLICY), "--out",
                                          str(tmp_path / "out")])
    assert result.exit_code == 1 and "nope" in result.output


@pytest.mark.usefixtures("prefect_api")
def test_run_sandbox_sends_the_closed_route_to_the_loopback_videos_api(tmp_path):
    from vidbatch.ledger import LEDGER_SCHEMA
    from vidbatch.storage import open_root

    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"realism": "high"}])
    out = str(tmp_path / "out")
    planned = vidbatch("plan", catalog, "--policy", str(DEMO_POLICY), "--json", "--sandbox")
    assert {json.loads(line)["item_id"]: json.loads(line)["provider"] for line in planned.stdout.splitlines()} == {
        "i0": "wan", "i1": "sora"}
    with registry.bound({"wan": lambda policy: TestsrcProvider()}):
        result = CliRunner().invoke(app, ["run", catalog, "--policy", str(DEMO_POLICY), "--out", out,
                                          "--sandbox", "--sandbox-latency", "0.3"])
    assert result.exit_code == 0, result.output
    assert "finished: 2" in result.output
    ledger = open_root(out).read_parquet_dir("ledger", LEDGER_SCHEMA)
    sora = ledger.filter(pl.col("provider") == "sora")
    assert sorted(sora["status"]) == ["reserved", "settled", "submitted"]
    assert ledger["sandbox"].all()  # a sandbox run marks every row, both routes
