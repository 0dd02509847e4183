"""One line per fault (issue 28): the ledger database going away and coming back, or staying away;
S3 stopped under a real `vidbatch run`; its output root on a full disk. Each ends in one line
naming what failed, a Failed run and a non-zero exit, never a traceback; every paid call is in the
ledger, and a rerun delivers what was paid without paying twice (ledger == billed)."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import polars as pl
import pytest

from tests.cli_runs import cli_env, closed_route_policy, high_realism_catalog, start_run, wait_for
from tests.conftest import closed_provider, ledger_of, produce
from vidbatch.sandbox import VideosSandbox

ITEMS = 6
OUTAGE_S = float(os.environ.get("VIDBATCH_TEST_OUTAGE_S", "5"))  # how long the database stays down (20: the issue's)


def _spent(ledger: pl.DataFrame) -> float:
    return round(ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum(), 6)


def _one_job_per_item(box: VideosSandbox) -> None:
    prompts = [job.prompt for job in box.jobs.values()]
    assert sorted(prompts) == sorted(f"wave {n}" for n in range(ITEMS)), prompts


@pytest.fixture
def pg(monkeypatch):
    """A PostgreSQL cluster of this test's own (it is stopped and started) and a ledger on it."""
    from tests.postgres_cluster import new_database, postgres_binaries, throwaway_postgres

    if postgres_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: infra/dev.sh test installs Debian's postgresql in CI")
        pytest.skip("no PostgreSQL binaries (Debian's postgresql package)")
    with throwaway_postgres() as server:
        url = new_database(server)
        monkeypatch.setenv("VIDBATCH_LEDGER_URL", url)
        yield server, url


def _outage(pg, box: VideosSandbox) -> threading.Thread:
    """Once every job of the run is recorded, the ledger database stops; the jobs then finish (their
    money must be written) and the database comes back after OUTAGE_S."""
    from tests.postgres_cluster import start_postgres, stop_postgres
    from vidbatch.ledger_store import LedgerStore

    server, url = pg

    def outage() -> None:
        store = LedgerStore(url)
        while store.frame().filter(pl.col("status") == "submitted").height < ITEMS:
            time.sleep(0.1)  # every job is recorded; the run only polls now
        stop_postgres(server)
        box.latency_s = 0.2  # the jobs finish: their paid rows wait for the database
        time.sleep(OUTAGE_S)
        start_postgres(server)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    return thread


@pytest.mark.usefixtures("prefect_api")
def test_a_ledger_database_that_comes_back_is_waited_for_and_nothing_is_lost(tmp_path, pg, monkeypatch):
    monkeypatch.setenv("VIDBATCH_LEDGER_PATIENCE_S", "600")
    with VideosSandbox(latency_s=600.0, poll_after_ms=50) as box:
        policy = closed_route_policy(tmp_path / "policy.toml", box, concurrency=ITEMS)
        catalog = high_realism_catalog(tmp_path / "catalog.parquet", ITEMS, "outage")
        outage = _outage(pg, box)
        summary = produce(catalog, out=str(tmp_path / "out"), policy_path=str(policy),
                          providers={"sora": lambda pol: closed_provider(box), "wan": None})
        outage.join(timeout=300)
        assert summary["status_counts"] == {"finished": ITEMS}, summary
        _one_job_per_item(box)
        assert _spent(ledger_of(tmp_path / "out")) == pytest.approx(box.total_billed_usd())


def test_a_ledger_database_that_stays_away_stops_a_real_run_in_one_line_and_the_rerun_pays_nothing_twice(
        tmp_path, pg, team_prefect_api):
    from vidbatch.ledger_store import LedgerStore

    server, url = pg
    with VideosSandbox(latency_s=600.0, poll_after_ms=50) as box:
        policy = closed_route_policy(tmp_path / "policy.toml", box, concurrency=ITEMS)
        catalog = high_realism_catalog(tmp_path / "catalog.parquet", ITEMS, "outage")
        env = cli_env(box, str(tmp_path / "home"), team_prefect_api, VIDBATCH_LEDGER_URL=url,
                      VIDBATCH_LEDGER_PATIENCE_S="1")
        outage = _outage(pg, box)
        log = tmp_path / "stopped.log"
        code = start_run(log, catalog, policy, str(tmp_path / "out"), env).wait(timeout=600)
        outage.join(timeout=300)
        output = log.read_text()
        assert code == 1 and "Traceback" not in output, output[-3000:]
        last = output.strip().splitlines()[-1]
        assert last.startswith("error: run ")
        assert " stopped (fault: the ledger database postgresql+psycopg://[redacted]@" in last
        assert "cannot be reached (for " in last and "the next run resumes them" in last, last
        billed, jobs = box.total_billed_usd(), len(box.jobs)
        rerun = start_run(tmp_path / "rerun.log", catalog, policy, str(tmp_path / "out"), env)
        assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        assert (box.total_billed_usd(), len(box.jobs)) == (billed, jobs)  # resumed and delivered, not paid again
        assert _spent(LedgerStore(url).frame()) == pytest.approx(billed)


def test_s3_stopped_under_a_real_run_ends_in_one_line_and_the_rerun_pays_nothing_twice(
        tmp_path, moto_s3, team_prefect_api):
    import boto3
    from moto.server import ThreadedMotoServer

    server, port = moto_s3
    boto3.client("s3").create_bucket(Bucket="studio")
    env_extra = {name: os.environ[name] for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                                                      "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    env_extra.update(AWS_MAX_ATTEMPTS="1", VIDBATCH_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.db'}")
    with VideosSandbox(latency_s=600.0, poll_after_ms=50) as box:
        policy = closed_route_policy(tmp_path / "policy.toml", box, concurrency=ITEMS)
        catalog = high_realism_catalog(tmp_path / "catalog.parquet", ITEMS, "s3")
        env = cli_env(box, str(tmp_path / "home"), team_prefect_api, **env_extra)
        log = tmp_path / "stopped.log"
        process = start_run(log, catalog, policy, "s3://studio/night", env)
        wait_for(lambda: len(box.jobs) == ITEMS, process, log)
        server.stop()  # S3 goes away while every job runs
        box.latency_s = 0.2
        code = process.wait(timeout=300)
        output = log.read_text()
        assert code == 1, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        last = output.strip().splitlines()[-1]
        assert last.startswith("error: run ") and "(fault: the output root s3://studio/night cannot be" in last, last
        from vidbatch.ledger_store import LedgerStore

        between = LedgerStore(env_extra["VIDBATCH_LEDGER_URL"]).frame()
        assert _spent(between) == pytest.approx(box.total_billed_usd())  # every paid call recorded, S3 or not
        billed, jobs = box.total_billed_usd(), len(box.jobs)

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)  # S3 is back, with what it held
        server.start()
        rerun = start_run(tmp_path / "rerun.log", catalog, policy, "s3://studio/night", env)
        assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        assert (box.total_billed_usd(), len(box.jobs)) == (billed, jobs)  # delivered, not paid again
        _one_job_per_item(box)
        assert _spent(LedgerStore(env_extra["VIDBATCH_LEDGER_URL"]).frame()) == pytest.approx(billed)
    server.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB filesystem (tmpfs) for an output root, or a skip where this machine may not mount one: it
    holds one raw clip of the Videos API sandbox (1280x720, 1.9 MB), not two."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {made.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_an_output_root_on_a_full_disk_ends_in_one_line_and_the_rerun_pays_nothing_twice(
        tmp_path, small_disk, team_prefect_api):
    # The disk holds one raw clip: the first wave's stores fill it. How many of the later clips had
    # their jobs submitted by then depends on the machine (a slot passes to the next clip once its
    # job ends at the provider, before the download and the store), so what is checked is that none
    # of them is lost or paid twice, not how many there were.
    with VideosSandbox(latency_s=2.0, poll_after_ms=50) as box:
        policy = closed_route_policy(tmp_path / "policy.toml", box, concurrency=2)
        catalog = high_realism_catalog(tmp_path / "catalog.parquet", ITEMS, "disk")
        env = cli_env(box, str(tmp_path / "home"), team_prefect_api)
        out = small_disk / "out"
        log = tmp_path / "full.log"
        code = start_run(log, catalog, policy, str(out), env).wait(timeout=600)
        output = log.read_text()
        assert code == 1, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        last = output.strip().splitlines()[-1]
        assert last.startswith("error: run ") and " stopped (fault: " in last, output[-3000:]
        assert "No space left on device" in last or "database or disk is full" in last, output[-3000:]
        ledger = ledger_of(out)
        known = set(ledger.filter(pl.col("status") == "submitted")["job_id"])
        paid = set(ledger.filter(pl.col("status") == "paid")["job_id"])
        assert set(box.jobs) == known  # every job the endpoint made is in the ledger
        # every billed clip is paid in the ledger already, or its job is open there for the rerun to resume
        bill = [line for line in box.book.billing() if line["usd"] > 0]  # jobs completed by now
        billed, billed_jobs = sum(line["usd"] for line in bill), {line["video_id"] for line in bill}
        assert paid <= billed_jobs <= known
        assert _spent(ledger) == pytest.approx(sum(line["usd"] for line in bill if line["video_id"] in paid))

        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space again
        box.book.latency_s = 0.5
        rerun = start_run(tmp_path / "rerun.log", catalog, policy, str(out), env)
        assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        _one_job_per_item(box)
        assert _spent(ledger_of(out)) == pytest.approx(box.total_billed_usd())
        assert box.total_billed_usd() - billed == pytest.approx(1.2 * (ITEMS - len(billed_jobs)))  # the rest, once each
