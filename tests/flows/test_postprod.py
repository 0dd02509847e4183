"""Post-production in the catalog flow against a real Prefect API: storyboards, QA, the report."""

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import polars as pl
import pytest

from tests.conftest import ledger_of, policy_file, toml_value, write_catalog
from tests.test_media import nearest_colour
from tests.conftest import produce
from vidbatch.ledger_store import open_ledger
from vidbatch.media import frame_at, probe
from vidbatch.providers.testsrc import TestsrcProvider
from vidbatch.storage import open_root

pytestmark = pytest.mark.usefixtures("prefect_api")



def run(tmp_path, rows, wan, sora=None, **policy):
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    pol = policy_file(tmp_path / "p.toml", global_limits=False)
    if policy:
        with open(pol, "a") as handle:
            handle.write("\n[qa]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in policy.items()))
    return produce(catalog, out=str(tmp_path / "out"), policy_path=pol,
                   providers={"wan": lambda p: wan, "sora": (lambda p: sora) if sora else None})


def scene(index, **extra):
    return {"item_id": f"s{index}", "storyboard_id": "sb", "scene_index": index, **extra}


def test_mixed_route_storyboard_is_normalised_crossfaded_in_order_and_reported(tmp_path):
    wan = TestsrcProvider(patterns={"s0": ["color:red"], "s2": ["color:yellow"]})
    sora = TestsrcProvider(id="sora", fps=30, audio=True, patterns={"s1": ["color:blue"]})
    rows = [scene(2, duration_s=1.5, trim_start_s=0.5, crossfade_s=0.25),  # catalog order is not scene order
            scene(0, duration_s=1.0, crossfade_s=0.25),
            scene(1, duration_s=4.0, realism="high", crossfade_s=0.25),
            {"item_id": "solo", "duration_s": 1.0, "extend_s": 1.0}]
    summary = run(tmp_path, rows, wan, sora)
    assert summary["status_counts"] == {"finished": 4} and summary["failed"] == []
    [board] = summary["storyboards"]
    assert board["status"] == "stitched", board
    out = tmp_path / "out"
    stitched = probe(out / "assets" / "c1" / "storyboards" / "sb.mp4")
    assert abs(stitched.duration_s - (1.0 + 4.0 + 1.5 - 2 * 0.25)) <= 1 / stitched.fps + 1e-9
    assert (stitched.width, stitched.height, stitched.fps) == (1280, 720, 30.0) and stitched.has_audio
    path = out / "assets" / "c1" / "storyboards" / "sb.mp4"
    assert [nearest_colour(frame_at(path, t)) for t in (0.4, 2.5, 5.5)] == ["red", "blue", "yellow"]
    record = open_ledger(open_root(str(out))).stitches().row(0, named=True)  # in the ledger database
    assert record["mode"].startswith("re-encoded to 1280x720 at 30 fps") and "fps differs" in record["mode"]
    solo = probe(out / "assets" / "c1" / "solo.mp4")  # extended by 1 s on the (test) Wan route
    assert abs(solo.duration_s - 2.0) <= 1 / 16

    report = summary["report"]
    assert report == str(out / "runs" / summary["run_id"] / "report" / "index.html")
    _check_report_in_a_browser(report, tmp_path, clips=4, storyboards=1)
    _check_artifacts(summary["run_id"])


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: infra/dev.sh test installs Debian's chromium in CI")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found


def _check_report_in_a_browser(report: str, tmp_path, clips: int, storyboards: int) -> None:
    """Load the report in headless chromium: every contact sheet decodes, every clip has a row."""
    browser = _chromium()
    # Its own profile and no /dev/shm (small in containers): tests on the other workers run at once.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'chromium'}"]
    # A short TMPDIR: chromium's singleton socket path must fit a Unix socket's 108 bytes.
    env = {**os.environ, "TMPDIR": tempfile.mkdtemp(prefix="chr-", dir="/tmp")}
    opened = subprocess.run([browser, *flags, "--dump-dom", f"file://{report}"], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert opened.returncode == 0, f"chromium exit {opened.returncode}: {opened.stderr[-3000:]}"
    dom = opened.stdout
    assert f'data-images="{clips + storyboards}"' in dom and 'data-broken="0"' in dom
    assert dom.count('<span class="badge ok">finished</span>') == clips
    assert '<span class="badge ok">stitched</span>' in dom and "<svg" in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1400,1800", f"--screenshot={shot}", f"file://{report}"],
                   capture_output=True, timeout=60, check=True, stdin=subprocess.DEVNULL, env=env)
    pixels = frame_at(shot, 0)
    assert pixels.shape[:2] == (1800, 1400) and np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 50
    keep = os.environ.get("VIDBATCH_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def _check_artifacts(run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    by_key = {a.key: a for a in artifacts if a.key}
    [progress] = [a for a in artifacts if a.type == "progress"]  # written by its own thread, the last percent too
    assert progress.data == 100.0 and progress.description == "clips finished of 4"
    assert {"campaign-report", "clips", "run-summary"} <= set(by_key)
    assert "report-link" not in by_key  # the UI opens no file:// link: a local report is named, not linked
    report = by_key["campaign-report"].data
    assert "| c1 |" in report and "stitched" in report and "Report (open it from this machine): `/" in report
    routes = json.loads(by_key["run-summary"].data)
    assert len({r["route"] for r in routes}) == len(routes)  # one row per route, its money once
    money = [v for rows in (routes, json.loads(by_key["clips"].data)) for r in rows for k, v in r.items()
             if k.endswith("_usd") and v is not None]
    assert money and all(round(v, 4) == v for v in money)  # cents, not 18 digits
    clips = json.loads(by_key["clips"].data)
    finished = [r for r in clips if r["status"] == "finished"]
    assert finished and all(isinstance(r["coherence"], float) and r["motion"] is not None for r in finished)


def test_a_missing_scene_blocks_its_storyboard_until_a_later_run_makes_it(tmp_path):
    rows = [scene(0), scene(1, max_cost_usd=0.0001)]
    wan = TestsrcProvider()
    first = run(tmp_path, rows, wan)
    [board] = first["storyboards"]
    assert board["status"] == "blocked" and board["reason"].startswith("waits for scene 1 (s1): deferred")
    assert not (tmp_path / "out" / "assets" / "c1" / "storyboards").exists()

    rows[1].pop("max_cost_usd")
    second = run(tmp_path, rows, wan)
    assert wan.calls == ["s0", "s1"]  # scene 0 was not made again
    [board] = second["storyboards"]
    assert board["status"] == "stitched"
    record = open_ledger(open_root(str(tmp_path / "out"))).stitches().row(0, named=True)
    assert record["mode"] == "stream copy" and abs(record["seconds"] - 4.0) <= 1 / 16

    third = run(tmp_path, rows, wan)
    assert third["storyboards"][0]["status"] == "done" and wan.calls == ["s0", "s1"]
    assert open_ledger(open_root(str(tmp_path / "out"))).stitches().height == 1  # stitched once


def test_qa_regenerates_a_black_clip_once_and_fails_a_clip_frozen_twice(tmp_path):
    wan = TestsrcProvider(patterns={"dark": ["black", "testsrc2"], "stuck": ["still"]})
    rows = [{"item_id": "dark", "duration_s": 2.5}, {"item_id": "stuck", "duration_s": 2.5},
            {"item_id": "fine", "duration_s": 2.5}]
    summary = run(tmp_path, rows, wan)
    assert summary["status_counts"] == {"finished": 2, "failed": 1}
    [regenerated] = summary["qa_regenerated"]
    assert regenerated["item_id"] == "dark" and "the first clip failed: black from 0.00 s" in regenerated["qa"]
    [failure] = summary["failed"]
    assert failure["item_id"] == "stuck" and failure["reason"].startswith("QAFailed: QA failed twice")
    assert "frozen from 0.00 s" in failure["reason"]

    ledger = ledger_of(tmp_path / "out")
    for item, settled, rejected in (("dark", 2, 1), ("stuck", 2, 2), ("fine", 1, 0)):
        rows_of = ledger.filter(pl.col("item_id") == item)
        assert rows_of.filter(pl.col("status") == "settled").height == settled
        assert rows_of.filter(pl.col("status") == "qa_failed").height == rejected
        assert rows_of.filter(pl.col("status") == "reserved").height == settled  # each regeneration paid once
    second = ledger.filter((pl.col("item_id") == "dark") & (pl.col("status") == "reserved"))["reason"][1]
    assert second.startswith("QA regeneration with seed")
    paid = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum()
    assert summary["cost_usd"] == pytest.approx(paid)

    again = run(tmp_path, rows, wan)  # the QA-failed item is still to make; the others are done
    assert again["status_counts"] == {"done": 2, "failed": 1}


def test_a_broken_download_fails_qa_and_is_made_again_never_delivered_from_its_stored_copy(tmp_path):
    """Issue 27: a zero-filled MP4 was settled, its cut failed, and every rerun 'finished' the item
    from that stored copy and failed again. Now it is a QA failure of that clip, made again once."""
    wan = TestsrcProvider(patterns={"broken": ["zeros", "testsrc2"], "twice": ["zeros", "zeros", "testsrc2"]})
    rows = [{"item_id": "broken", "duration_s": 2.0}, {"item_id": "twice", "duration_s": 2.0}]
    summary = run(tmp_path, rows, wan)
    assert summary["status_counts"] == {"finished": 1, "failed": 1}
    assert "unreadable clip" in summary["qa_regenerated"][0]["qa"]
    assert summary["failed"][0]["item_id"] == "twice" and "unreadable clip" in summary["failed"][0]["reason"]
    ledger = ledger_of(tmp_path / "out")
    assert ledger.filter(pl.col("status") == "qa_failed")["item_id"].sort().to_list() == ["broken", "twice", "twice"]
    again = run(tmp_path, rows, wan)  # the rerun makes the item again: its broken copies are never delivered
    assert again["status_counts"] == {"done": 1, "finished": 1} and wan.calls.count("twice") == 3
    paid = ledger_of(tmp_path / "out").filter(pl.col("status").is_in(["paid", "settled", "failed"]))
    assert paid["cost_usd"].sum() == pytest.approx(summary["cost_usd"] + again["cost_usd"])  # every clip's money


def test_qa_without_regeneration_fails_at_once(tmp_path):
    wan = TestsrcProvider(patterns={"dark": ["black", "testsrc2"]})
    summary = run(tmp_path, [{"item_id": "dark", "duration_s": 2.0}], wan, regenerate_once=False)
    assert summary["failed"][0]["reason"].startswith("QAFailed: QA failed: black")
    assert wan.calls == ["dark"]
