"""The vidbatch command as a user runs it."""

import contextlib
import json
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import DEMO_POLICY, ledger_of, write_catalog
from vidbatch.cli import app


def vidbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidbatch.cli", *args], capture_output=True, text=True)


def test_plan_json_lists_items_and_rejects(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"realism": "high"}, {"aspect": "square"}])
    result = vidbatch("plan", catalog, "--policy", str(DEMO_POLICY), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_id = {line["item_id"]: line for line in lines}
    assert set(by_id["i0"]) == {"item_id", "route", "model", "pool", "est_cost_usd", "status", "reason"}
    assert by_id["i0"]["status"] == "planned" and by_id["i0"]["route"] == "wan"
    assert by_id["i1"]["status"] == "deferred" and "sora is unavailable (no API key" in by_id["i1"]["reason"]
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


def policy_on_testsrc(tmp_path) -> str:
    """The demo policy with its Wan models drawing a moving test pattern (no weights, fast)."""
    policy = tmp_path / "testsrc.toml"
    policy.write_text(DEMO_POLICY.read_text().replace('source = "tiny"', 'source = "testsrc"'))
    return str(policy)


@pytest.mark.usefixtures("prefect_api")
def test_run_then_ledger(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"duration_s": 0}])
    out = str(tmp_path / "out")
    result = CliRunner().invoke(app, ["run", catalog, "--policy", policy_on_testsrc(tmp_path), "--out", out])
    assert result.exit_code == 0, result.output
    assert "finished: 1" in result.output and "rejected rows: 1" in result.output
    ledger = CliRunner().invoke(app, ["ledger", "--out", out, "--json"])
    rows = [json.loads(line) for line in ledger.output.splitlines()]
    assert rows[0]["clips"] == 1 and rows[0]["route"] == "wan" and rows[0]["actual_usd"] > 0


@pytest.mark.usefixtures("prefect_api")
def test_run_exits_nonzero_when_an_item_fails(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{"realism": "high", "prompt": "a forbidden shot"}])
    result = CliRunner().invoke(app, ["run", catalog, "--policy", policy_on_testsrc(tmp_path), "--out",
                                      str(tmp_path / "out"), "--sandbox", "--sandbox-latency", "0.2",
                                      "--sandbox-faults", '{"moderate": "forbidden"}'])
    assert result.exit_code == 1, result.output
    assert "moderation" in result.output and "failed: 1" in result.output


@pytest.mark.usefixtures("prefect_api")
def test_run_sandbox_sends_the_closed_route_to_the_loopback_videos_api(tmp_path):

    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"realism": "high"}])
    out = str(tmp_path / "out")
    planned = vidbatch("plan", catalog, "--policy", str(DEMO_POLICY), "--json", "--sandbox")
    assert {json.loads(line)["item_id"]: json.loads(line)["route"] for line in planned.stdout.splitlines()} == {
        "i0": "wan", "i1": "sora"}
    result = CliRunner().invoke(app, ["run", catalog, "--policy", policy_on_testsrc(tmp_path), "--out", out,
                                      "--sandbox", "--sandbox-latency", "0.3"])
    assert result.exit_code == 0, result.output
    assert "finished: 2" in result.output
    ledger = ledger_of(out)
    sora = ledger.filter(pl.col("route") == "sora")
    assert sorted(sora["status"]) == ["delivered", "paid", "reserved", "settled", "submitted"]
    assert ledger["sandbox"].all()  # a sandbox run marks every row, both routes


def test_plan_of_a_big_catalog_prints_a_summary_and_saves_every_row(tmp_path):
    rows = [{"campaign": f"camp-{i % 60}", "realism": "high" if i % 4 == 0 else "low"} for i in range(3000)]
    rows[7] = {"aspect": "square"}
    catalog = write_catalog(tmp_path / "c.parquet", rows)
    saved = tmp_path / "plans" / "full.parquet"
    result = vidbatch("plan", catalog, "--policy", str(DEMO_POLICY), "--save", str(saved))
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    assert len(printed.splitlines()) < 150  # a summary, not 3,000 rows
    assert "2,999 items by campaign, route and status" in printed and "more groups" in printed
    assert "deferred and rejected, by reason" in printed and "realism high: prefers sora" in printed
    assert f"full plan (every row, with reasons): {saved}" in printed.replace("\n", "")
    plan = pl.read_parquet(saved)
    assert plan.height == 2999 + 1 and plan.filter(pl.col("status") == "rejected")["column"].to_list() == ["aspect"]
    deferred = plan.filter(pl.col("status") == "deferred")
    assert deferred.filter(pl.col("reason").str.contains("sora is unavailable (no API key", literal=True)).height == 750
    assert f"{deferred.height:,} deferred" in printed


def test_plan_json_streams_one_line_per_row(tmp_path):
    catalog = write_catalog(tmp_path / "c.parquet", [{"campaign": f"camp-{i % 9}"} for i in range(2500)])
    result = vidbatch("plan", catalog, "--policy", str(DEMO_POLICY), "--json")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 2500
    assert json.loads(lines[-1])["item_id"] == "i2499"


def test_ledger_of_many_nights_shows_the_newest_and_totals(tmp_path):
    from vidbatch.ledger import ledger_frame, ledger_row

    rows = [ledger_row(run_id="r", night=f"2026-10-{day:02d}", item_id=f"i{day}-{c}", campaign=f"camp-{c}",
                       status=status, route="wan", model="m", est_cost_usd=0.5, cost_usd=0.25)
            for day in range(1, 31) for c in range(5) for status in ("reserved", "settled")]
    (tmp_path / "out" / "ledger").mkdir(parents=True)
    ledger_frame(rows).write_parquet(tmp_path / "out" / "ledger" / "part-0.parquet")
    result = CliRunner().invoke(app, ["ledger", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "│ 2026-10-30" in result.output and "│ 2026-10-01" not in result.output  # newest nights first
    assert "and 110 more rows (all rows: --json)" in result.output
    assert "total actual $37.50 (estimated $75.00), 2026-10-01 to 2026-10-30" in result.output
    every = CliRunner().invoke(app, ["ledger", "--out", str(tmp_path / "out"), "--json"])
    assert len(every.output.splitlines()) == 150


def test_run_summary_at_the_terminal_names_the_first_items_and_counts_the_rest(capsys):
    from vidbatch.cli.run import _print_summary

    summary = {"run_id": "r1", "night": "n", "out": "/o", "status_counts": {"deferred": 20_020},
               "rejected_rows": 0, "est_cost_usd": 0.0, "cost_usd": 0.0, "unavailable": {}, "fell_back": [],
               "deferred": [{"item_id": f"i{i}", "reason": "night cap reached"} for i in range(20)],
               "qa_regenerated": [], "failed": [], "storyboards": [], "report": "/o/report.html",
               "more": {"deferred": 20_000, "failed": 0, "fell_back": 0, "qa_regenerated": 0}}
    _print_summary(summary)
    printed = capsys.readouterr().out
    assert printed.count("deferred i") == 20 and "… and 20,000 more deferred" in printed
    assert "every item: /o/runs/r1/items.parquet" in printed


def test_a_run_of_many_clips_on_the_ephemeral_api_ends_quietly_with_every_task_run_recorded(tmp_path,
                                                                                          child_prefect_home):
    """The temporary Prefect server stops when vidbatch exits: vidbatch first lets it record the
    run's last task states (else its recorder's cancelled write prints tracebacks, states lost).
    It also starts that server patiently: the server takes about 12 s to come up here (26 s on a new
    PREFECT_HOME, which first builds its database), far past the 1 s Prefect is told to wait below,
    and the run still goes ahead."""
    import os
    import re

    policy = tmp_path / "testsrc.toml"
    text = DEMO_POLICY.read_text().replace('source = "tiny"', 'source = "testsrc"')
    policy.write_text(re.sub(r"(night_usd|campaign_usd) = [\d.]+", r"\1 = 500.0", text))
    catalog = write_catalog(tmp_path / "c.parquet", [{"duration_s": 1.0}] * 60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=child_prefect_home("prefect-home"), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    result = subprocess.run([sys.executable, "-m", "vidbatch.cli", "run", catalog, "--policy", str(policy),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "finished: 60" in result.stdout
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr, result.stderr[-3000:]
    assert "had not recorded every task run" not in result.stderr


def test_ledger_exports_by_night_and_imports_once(tmp_path):
    from vidbatch.ledger import ledger_frame, ledger_row

    old = tmp_path / "old-root"
    (old / "ledger").mkdir(parents=True)
    rows = [ledger_row(run_id="r", night=f"2026-10-0{day}", item_id=f"i{day}", campaign="c", status="settled",
                       route="wan", cost_usd=0.5, reservation_id=f"res{day}") for day in range(1, 4)]
    ledger_frame(rows).rename({"route": "provider"}).write_parquet(  # from before the database: the route
        old / "ledger" / "part-0.parquet")                              # was called provider then
    exported = CliRunner().invoke(app, ["ledger", "export", str(tmp_path / "export"), "--out", str(old)])
    assert exported.exit_code == 0 and "exported 3 rows in 3 night(s)" in exported.output
    assert sorted(p.parent.name for p in (tmp_path / "export").rglob("*.parquet")) == [
        "night=2026-10-01", "night=2026-10-02", "night=2026-10-03"]
    scanned = pl.scan_parquet(tmp_path / "export", hive_partitioning=True).collect()
    assert scanned.height == 3 and scanned["cost_usd"].sum() == 1.5 and set(scanned["route"]) == {"wan"}
    fresh = str(tmp_path / "fresh-root")
    first = CliRunner().invoke(app, ["ledger", "import", str(tmp_path / "export"), "--out", fresh])
    again = CliRunner().invoke(app, ["ledger", "import", str(tmp_path / "export"), "--out", fresh])
    assert "imported 3 rows" in first.output and "nothing added" in again.output
    assert ledger_of(fresh).sort("night")["night"].to_list() == ["2026-10-01", "2026-10-02", "2026-10-03"]
    older = tmp_path / "older-export" / "night=2026-09-30"  # exported by a vidbatch from before `route`
    older.mkdir(parents=True)
    ledger_frame([{**rows[0], "night": "2026-09-30", "reservation_id": "res0"}]).drop("night").rename(
        {"route": "provider"}).write_parquet(older / "ledger.parquet")
    assert "imported 1 rows" in CliRunner().invoke(app, ["ledger", "import", str(older.parent), "--out", fresh]).output
    assert ledger_of(fresh).filter(pl.col("night") == "2026-09-30")["route"].to_list() == ["wan"]
    wrong = tmp_path / "not-a-ledger.parquet"
    pl.DataFrame({"item_id": ["x"]}).write_parquet(wrong)
    refused = CliRunner().invoke(app, ["ledger", "import", str(wrong), "--out", fresh])
    assert refused.exit_code == 2 and "is not a vidbatch ledger" in refused.output


def test_the_policys_ledger_is_the_one_plan_and_ledger_read(tmp_path):
    from vidbatch.catalog import validate_catalog, with_fingerprints
    from vidbatch.ledger import Reservation
    from vidbatch.ledger_store import LedgerStore
    from vidbatch.storage import read_catalog

    team = f"sqlite:///{tmp_path / 'team.db'}"
    policy = tmp_path / "p.toml"
    policy.write_text(DEMO_POLICY.read_text() + f'\n[ledger]\nurl = "{team}"\n')
    catalog = write_catalog(tmp_path / "c.parquet", [{}, {}])
    made = with_fingerprints(validate_catalog(read_catalog(catalog))[0]).row(0, named=True)
    paid = Reservation(run_id="earlier", night="2026-11-01", item_id=made["item_id"], campaign=made["campaign"],
                       fingerprint=made["fingerprint"], route="wan", model="m", est_cost_usd=0.1,
                       reservation_id="r1")
    LedgerStore(team).append([paid.reserved("before generate"), paid.closed("settled", 0.08, "")])
    plan = vidbatch("plan", catalog, "--policy", str(policy), "--out", str(tmp_path / "out"), "--json")
    assert plan.returncode == 0, plan.stderr
    status = {json.loads(line)["item_id"]: json.loads(line)["status"] for line in plan.stdout.splitlines()}
    assert status == {"i0": "done", "i1": "planned"}  # i0 was settled in the policy's ledger
    # A ledger URL (with a policy that names none), and the policy's own; no output root either way.
    for named in (["--ledger", team, "--policy", str(DEMO_POLICY)], ["--policy", str(policy)]):
        bare = vidbatch("plan", catalog, *named, "--json")
        assert bare.returncode == 0, bare.stderr
        assert {json.loads(line)["item_id"]: json.loads(line)["status"] for line in bare.stdout.splitlines()} == status
    shown = vidbatch("ledger", "--out", str(tmp_path / "out"), "--policy", str(policy))
    assert shown.returncode == 0 and "2026-11-01" in shown.stdout
    assert not (tmp_path / "out" / "ledger.db").exists()

    policy.write_text(DEMO_POLICY.read_text() + '\n[ledger]\nurl = "postgresql+psycopg://vidbatch:s3cret@db/ledger"\n')
    refused = vidbatch("plan", catalog, "--policy", str(policy))
    assert refused.returncode == 2 and "holds a password" in refused.stderr and "s3cret" not in refused.stderr


@pytest.mark.usefixtures("prefect_api")
def test_run_ledger_goes_to_the_run_by_hand_never_into_prefect_or_the_environment(tmp_path):
    """`run --ledger URL` opens that ledger, yet the URL (a password, for a team's PostgreSQL) is
    no flow parameter Prefect stores, and the CLI writes no environment variable to pass it."""
    import os

    from prefect.client.orchestration import get_client

    secret_dir = tmp_path / "team-pw-7f3a9"  # stands for a password: it must appear nowhere in Prefect
    secret_dir.mkdir()
    team = f"sqlite:///{secret_dir / 'ledger.db'}"
    catalog = write_catalog(tmp_path / "c.parquet", [{}])
    result = CliRunner().invoke(app, ["run", catalog, "--policy", policy_on_testsrc(tmp_path), "--out",
                                      str(tmp_path / "out"), "--ledger", team])
    assert result.exit_code == 0, result.output
    from vidbatch.ledger_store import LedgerStore

    assert LedgerStore(team).frame().filter(pl.col("status") == "settled").height == 1  # the run used it
    assert not (tmp_path / "out" / "ledger.db").exists()
    assert not any("team-pw-7f3a9" in value for value in os.environ.values())
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    stored = [json.dumps(r.parameters) for r in runs if r.parameters.get("catalog") == catalog]
    assert len(stored) == 1 and '"in_process": "<InProcess>"' in stored[0] and "team-pw-7f3a9" not in stored[0]


def test_routes_lists_each_route_with_kind_capabilities_and_live_availability(sandbox):
    import os

    gone = subprocess.run([sys.executable, "-m", "vidbatch.cli", "routes", "--policy", str(DEMO_POLICY), "--json"],
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                               if not k.startswith("OPENAI_")})
    assert gone.returncode == 0, gone.stderr
    rows = {r["route"]: r for r in map(json.loads, gone.stdout.splitlines())}
    assert {name: r["kind"] for name, r in rows.items()} == {"wan": "wan-diffusers", "sora": "openai-videos"}
    assert rows["sora"]["capabilities"] == {"max_clip_s": 12.0, "max_footage_s": None, "image_input": True,
                                            "remix": True, "extend": True, "loras": [],
                                            "resolutions": ["480p", "720p"]}
    assert rows["wan"]["capabilities"]["remix"] is False and rows["wan"]["available"] is True
    assert rows["sora"]["available"] is False and "set OPENAI_API_KEY" in rows["sora"]["unavailable"]
    assert rows["sora"]["prices"]["usd_per_s"]["sora-2-pro"]["1280x720"] == 0.3
    assert rows["wan"]["order"] == {"prefer": {"low": 1, "medium": 1}, "long": {"low": 2, "medium": 2}}
    assert rows["sora"]["order"] == {"prefer": {"high": 1}, "long": {"low": 1, "medium": 1, "high": 1}}
    live = subprocess.run([sys.executable, "-m", "vidbatch.cli", "routes", "--policy", str(DEMO_POLICY)],
                          capture_output=True, text=True,
                          env={**os.environ, "OPENAI_BASE_URL": sandbox.base_url, "OPENAI_API_KEY": sandbox.api_key})
    assert live.returncode == 0, live.stderr
    assert f"sora (openai-videos, {sandbox.base_url})  available" in live.stdout
    assert "order   high #1 · long low #1 · long medium #1 · long high #1" in live.stdout
    assert sandbox.api_key not in live.stdout  # never a secret on screen


@contextlib.contextmanager
def sandbox_command(*flags: str, printed_until: str):
    """`vidbatch sandbox FLAGS` on a free port (0.2 s jobs) in its own process; yields what it
    printed up to the line naming `printed_until`, and stops it afterwards."""
    server = subprocess.Popen([sys.executable, "-m", "vidbatch.cli", "sandbox", *flags, "--port", "0",
                               "--latency", "0.2"], stdout=subprocess.PIPE, text=True)
    try:
        printed = ""
        while printed_until not in printed:
            line = server.stdout.readline()
            if not line:  # it exited without saying where it serves
                pytest.fail(f"vidbatch sandbox {' '.join(flags)} ended: {printed}")
            printed += line
        yield printed
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_dashscope_sandbox_command_serves_hosted_wan_for_rehearsals(tmp_path, monkeypatch):
    import re

    from vidbatch.providers import ClipRequest, Journal
    from vidbatch.providers.dashscope import DashScopeProvider, DashScopeSettings

    with sandbox_command("--dashscope", "--key", "sk-rehearsal", printed_until="DASHSCOPE_API_KEY") as printed:
        url = re.search(r"DASHSCOPE_HTTP_BASE_URL=(\S+)", printed).group(1)
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", url)
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-rehearsal")
        route = DashScopeProvider(DashScopeSettings(poll_interval_s=0.05), route_id="wan-hosted")
        assert route.unavailable() is None and route.sandbox
        clip = route.generate(ClipRequest(item_id="r", prompt="a rehearsal", seconds=4.0, width=832, height=480,
                                          model="m"), tmp_path, Journal())
        assert clip.cost_usd == pytest.approx(0.18) and clip.path.stat().st_size > 0


def test_the_veo_sandbox_command_serves_a_gemini_veo_route_for_rehearsals(tmp_path, monkeypatch):
    import re

    from vidbatch.providers import ClipRequest, Journal
    from vidbatch.providers.gemini_veo import VeoProvider, VeoSettings

    both = vidbatch("sandbox", "--veo", "--dashscope")
    assert both.returncode == 2 and "one sandbox per API" in both.stderr
    with sandbox_command("--veo", "--key", "veo-rehearsal", printed_until="VEO_API_KEY") as printed:
        url = re.search(r'base_url = "(\S+)"', printed).group(1)
        monkeypatch.setenv("VEO_API_KEY", "veo-rehearsal")
        route = VeoProvider(VeoSettings(base_url=url, api_key_env="VEO_API_KEY", poll_interval_s=0.05),
                            route_id="veo")
        assert route.unavailable() is None
        clip = route.generate(ClipRequest(item_id="r", prompt="a rehearsal", seconds=4.0, width=1280, height=720,
                                          model="veo-3.1-generate-001", resolution="720p"), tmp_path, Journal())
        assert clip.cost_usd == pytest.approx(4 * 0.40) and clip.path.stat().st_size > 0


def _run_alone(tmp_path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, object]:
    """`vidbatch run ARGS` with a PREFECT_HOME of its own that nothing has used yet."""
    import os

    home = tmp_path / "fresh-prefect-home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    done = subprocess.run([sys.executable, "-m", "vidbatch.cli", "run", *args], capture_output=True, text=True,
                          env={**clean, "PREFECT_HOME": str(home), **env}, timeout=600)
    return done, home


SECRET = "PWLEAK77"


@pytest.mark.parametrize("mistake,expected", [
    ("csv catalog", "is not a Parquet file"),
    ("json catalog", "is not a Parquet file"),
    ("missing catalog", "cannot read"),
    ("missing policy", "cannot read policy file"),
    ("out is a file", "cannot create output folder"),
    ("base_url with a password", "routes.sora.base_url: holds credentials"),
    ("ledger url with a password", "the ledger URL holds a password"),
])
def test_a_mistake_is_refused_in_one_message_before_anything_starts(tmp_path, mistake, expected):
    """Issue 28: each mistake used to cost the temporary Prefect server's start (~25-30 s) and 1-3
    Prefect tracebacks; a policy's password reached Prefect's log. Now: exit 2, vidbatch's message,
    no traceback, no secret, and no Prefect server was started (its database was never made)."""
    catalog, policy, out = write_catalog(tmp_path / "c.parquet", [{}]), str(DEMO_POLICY), str(tmp_path / "out")
    if mistake in ("csv catalog", "json catalog"):
        catalog = str(tmp_path / ("c.csv" if mistake == "csv catalog" else "c.json"))
        pl.DataFrame({"item_id": ["a"], "prompt": ["p"]}).pipe(
            lambda f: f.write_csv(catalog) if mistake == "csv catalog" else f.write_json(catalog))
    elif mistake == "missing catalog":
        catalog = str(tmp_path / "nowhere.parquet")
    elif mistake == "missing policy":
        policy = str(tmp_path / "nowhere.toml")
    elif mistake == "out is a file":
        (tmp_path / "out").write_text("a file, not a folder")
    else:
        text = DEMO_POLICY.read_text()
        leaky_url = f'kind = "openai-videos"\nbase_url = "http://u:{SECRET}@h:1/v1"\n'
        text = (text.replace('kind = "openai-videos"\n', leaky_url) if mistake.startswith("base_url")
                else text + f'\n[ledger]\nurl = "postgresql://u:{SECRET}@db/vidbatch"\n')
        (tmp_path / "p.toml").write_text(text)
        policy = str(tmp_path / "p.toml")
    done, home = _run_alone(tmp_path, catalog, "--policy", policy, "--out", out)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and SECRET not in done.stdout + done.stderr
    assert not (home / "prefect.db").exists()  # the temporary Prefect server never started


def test_an_empty_catalog_says_so_and_starts_nothing(tmp_path):
    catalog = str(tmp_path / "empty.parquet")
    pl.DataFrame(schema={"item_id": pl.String, "campaign": pl.String, "prompt": pl.String, "duration_s": pl.Float64,
                         "aspect": pl.String, "realism": pl.String}).write_parquet(catalog)
    done, home = _run_alone(tmp_path, catalog, "--policy", str(DEMO_POLICY), "--out", str(tmp_path / "out"))
    assert done.returncode == 0 and "has no rows: nothing to make" in done.stdout, done.stdout + done.stderr
    assert not (home / "prefect.db").exists()


def test_a_run_with_no_route_available_says_so_per_route_and_exits_3(tmp_path, child_prefect_home):
    """The shipped policy on a machine without keys or model weights, the hub out of reach: nothing can
    be made. The run says so plainly, names each route's real cause, and exits 3 (README)."""
    import os

    catalog = write_catalog(tmp_path / "c.parquet", [{}, {"realism": "high"}, {"realism": "high", "duration_s": 8.0}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and not k.endswith("_API_KEY")}
    env.update(PREFECT_HOME=child_prefect_home("home"), HF_HUB_OFFLINE="1", PREFECT_LOGGING_LEVEL="WARNING")
    done = subprocess.run([sys.executable, "-m", "vidbatch.cli", "run", catalog, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output[-3000:]
    assert "nothing could be made: no route of the policy is available" in output
    assert "route wan unavailable: none of its models is on this machine" in output
    assert "HF_HUB_OFFLINE is set" in output
    assert "route veo unavailable: no project" in output and "route gateway unavailable: no API key" in output
    assert "config.json" not in output and "Traceback" not in output
