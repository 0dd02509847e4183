"""Several `vidbatch run` processes at once on one output root, against one Videos API sandbox:
the night cap holds across them to the cent, and no item is paid twice."""

import os
import subprocess
import sys

import polars as pl
import pytest

from tests.conftest import REPO, ledger_of, policy_file, write_catalog

# sora-2-pro at 1280x720 is $0.30/s and a 2 s item is one 4 s clip: $1.20 an item.
ITEM_USD = 1.20


def run_at_once(tmp_path, sandbox, api: str, catalogs: list[str], policy: str, ledger: str | None = None,
                own_roots: bool = False) -> list[subprocess.CompletedProcess]:
    """`vidbatch run` on each catalog, all started together against the Prefect API `api` (a team's
    server); on one output root, or (`own_roots`) each on its own, as separate machines, sharing `ledger`."""
    procs = []
    for n, catalog in enumerate(catalogs):
        out = tmp_path / (f"out-{n}" if own_roots else "out")
        shared = ["--ledger", ledger] if ledger else []
        env = {**os.environ, "OPENAI_BASE_URL": sandbox.base_url, "OPENAI_API_KEY": sandbox.api_key,
               "PREFECT_HOME": str(tmp_path / f"prefect-{n}"), "PREFECT_API_URL": api}
        procs.append(subprocess.Popen([sys.executable, "-m", "vidbatch.cli", "run", catalog, "--policy", policy,
                                       "--out", str(out), *shared], env=env, cwd=REPO, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def creates_per_prompt(sandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in sandbox.jobs.values():
        if job.kind == "create":
            counts[job.prompt] = counts.get(job.prompt, 0) + 1
    return counts


@pytest.mark.parametrize("processes", [2, 4])
def test_runs_at_once_share_one_night_cap(tmp_path, sandbox, team_prefect_api, processes):
    cap = 6.00  # five items' worth; each catalog alone would spend it all
    policy = policy_file(tmp_path / "p.toml", night_usd=cap, campaign_usd=cap, global_limits=False)
    catalogs = [write_catalog(tmp_path / f"c{n}.parquet",
                              [{"realism": "high", "duration_s": 2.0, "prompt": f"catalog {n} shot {i}",
                                "item_id": f"c{n}-i{i}"} for i in range(5)], campaign=f"camp{n}")
                for n in range(processes)]
    results = run_at_once(tmp_path, sandbox, team_prefect_api, catalogs, policy)
    for r in results:
        assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    billed = sandbox.total_billed_usd()
    assert billed <= cap + 1e-9 and billed == pytest.approx(5 * ITEM_USD)  # the cap bound, and held
    assert max(creates_per_prompt(sandbox).values()) == 1  # nothing paid twice
    ledger = ledger_of(tmp_path / "out")
    paid = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))
    assert round(paid["cost_usd"].sum(), 2) == round(billed, 2)  # the ledger equals the bill, to the cent
    refused = ledger.filter(pl.col("status") == "deferred")["reason"]
    # the campaign caps are the night's here: either may be the one that refuses
    assert refused.str.contains(r"(night|campaign) cap \$6\.00").all()
    assert ledger.filter(pl.col("status") == "reserved")["run_id"].n_unique() >= 1


def test_machines_with_their_own_roots_share_a_postgresql_ledgers_night_cap(tmp_path, sandbox, postgres_server,
                                                                           team_prefect_api):
    from tests.postgres_cluster import new_database
    from vidbatch.ledger_store import LedgerStore

    url, cap = new_database(postgres_server), 6.00
    policy = policy_file(tmp_path / "p.toml", night_usd=cap, campaign_usd=cap, global_limits=False)
    catalogs = [write_catalog(tmp_path / f"c{n}.parquet",
                              [{"realism": "high", "duration_s": 2.0, "prompt": f"machine {n} shot {i}",
                                "item_id": f"m{n}-i{i}"} for i in range(5)], campaign=f"camp{n}") for n in range(2)]
    results = run_at_once(tmp_path, sandbox, team_prefect_api, catalogs, policy, ledger=url, own_roots=True)
    for r in results:
        assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    billed = sandbox.total_billed_usd()
    assert billed <= cap + 1e-9 and billed == pytest.approx(5 * ITEM_USD)
    assert max(creates_per_prompt(sandbox).values()) == 1
    ledger = LedgerStore(url).frame()
    spent = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum()
    assert round(spent, 2) == round(billed, 2)
    assert not any((tmp_path / f"out-{n}" / "ledger.db").exists() for n in range(2))  # the shared one only


def test_the_same_catalog_twice_at_once_makes_each_item_once(tmp_path, sandbox, team_prefect_api):
    policy = policy_file(tmp_path / "p.toml", global_limits=False)
    rows = [{"realism": "high", "duration_s": 2.0, "prompt": f"shot {i}"} for i in range(5)]
    catalog = write_catalog(tmp_path / "c.parquet", rows)
    results = run_at_once(tmp_path, sandbox, team_prefect_api, [catalog, catalog], policy)
    for r in results:
        assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    assert creates_per_prompt(sandbox) == {f"shot {i}": 1 for i in range(5)}  # each item made once
    ledger = ledger_of(tmp_path / "out")
    settled = ledger.filter(pl.col("status") == "settled")
    assert sorted(settled["item_id"]) == [f"i{i}" for i in range(5)]
    assert ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum() == pytest.approx(
        sandbox.total_billed_usd())
    skipped = ledger.filter(pl.col("status") == "deferred")["reason"]
    assert skipped.str.contains("is making this item now|already made by run").all()
