"""Pure run logic: remix rows, resumption from the ledger, mid-run fallback."""

import polars as pl
import pytest

from tests.conftest import videos_api_policy, catalog, priced
from vidbatch.catalog import validate_catalog, with_fingerprints
from vidbatch.ledger import History, ledger_row
from vidbatch.ledger_store import LedgerStore

from vidbatch.runs import clip_jobs, fallback_job, history_keys, plan_run

POLICY = videos_api_policy()
UP = priced(POLICY)


def valid(rows):
    good, rejects = validate_catalog(catalog(rows))
    return with_fingerprints(good), rejects


def test_remix_rows_are_checked_against_their_source():
    _, rejects = valid([{"item_id": "a", "duration_s": 8.0},
                        {"item_id": "b", "remix_of": "a", "duration_s": 8.0},
                        {"item_id": "c", "remix_of": "zz"},
                        {"item_id": "d", "remix_of": "b"},
                        {"item_id": "e", "remix_of": "a", "duration_s": 9.0},
                        {"item_id": "g", "remix_of": "g"},
                        {"item_id": "h", "remix_of": "a", "campaign": "other"}])
    why = {(r["item_id"], r["column"]): r["reason"] for r in rejects.iter_rows(named=True)}
    assert "names no item of campaign 'c1'" in why[("c", "remix_of")]
    assert "is itself a remix" in why[("d", "remix_of")]
    assert "as long as its source (8.0 s)" in why[("e", "duration_s")]
    assert why[("g", "remix_of")] == "an item cannot remix itself"
    assert "names no item of campaign 'other'" in why[("h", "remix_of")]
    assert {item for item, _ in why} == {"c", "d", "e", "g", "h"}


def test_a_remix_is_priced_at_its_sources_length_and_never_falls_back():
    frame, _ = valid([{"item_id": "a", "duration_s": 8.0, "realism": "high"},
                      {"item_id": "b", "remix_of": "a", "duration_s": 3.0, "realism": "low"}])
    plan = plan_run(frame, POLICY, History(), UP).sort("item_id")
    remix = plan.row(1, named=True)
    assert remix["route"] == "sora" and remix["reason"].startswith("remix of a")
    assert remix["fallbacks"] == []  # only the service that made the source can remix it
    assert remix["est_cost_usd"] == pytest.approx(8 * 0.10)  # sora-2 for realism low, source's 8 s
    gone = plan_run(frame, POLICY, History(), priced(POLICY, {"sora": "no key"}))
    assert set(gone["status"]) == {"deferred"}


def test_open_reservations_with_jobs_are_resumed_not_replanned(tmp_path):
    frame, _ = valid([{"item_id": "a", "realism": "high"}, {"item_id": "b", "realism": "high"}])
    fp = dict(zip(frame["item_id"], frame["fingerprint"]))
    common = dict(run_id="run-1", night="2026-11-23", campaign="c1", route="sora", model="sora-2-pro",
                  est_cost_usd=1.2, reservation_id="r-a")
    store = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.append([ledger_row(item_id="a", fingerprint=fp["a"], status="reserved", **common),
                  ledger_row(item_id="a", fingerprint=fp["a"], status="submitted", job_id="video_1", **common)])
    history = store.history(history_keys(frame), "2026-11-24")
    assert history.in_flight["job_ids"].to_list() == [["video_1"]]
    plan = plan_run(frame, POLICY, history, UP)
    jobs = {j.item_id: j for j in clip_jobs(plan)}
    assert jobs["a"].resume_reservation_id == "r-a" and jobs["a"].resume_job_ids == ("video_1",)
    assert jobs["a"].est_cost_usd == 1.2 and "resuming job(s) video_1" in plan.filter(
        pl.col("item_id") == "a")["reason"][0]
    assert jobs["b"].resume_reservation_id is None
    assert plan_run(frame, POLICY, history, UP, busy_runs=frozenset({"run-1"})).filter(
        pl.col("item_id") == "a")["reason"][0].startswith("resuming") is False  # a live run finishes its own
    waiting = plan_run(frame, POLICY, history, priced(POLICY, {"sora": "endpoint gone"}))
    row = waiting.filter(pl.col("item_id") == "a").row(0, named=True)
    assert row["status"] == "deferred" and "in flight at sora, which is unavailable" in row["reason"]
    store.append([ledger_row(item_id="a", fingerprint=fp["a"], status="settled", cost_usd=1.2, job_id="video_1",
                             **common)])
    settled = store.history(history_keys(frame), "2026-11-24")
    assert settled.in_flight.is_empty()
    assert plan_run(frame, POLICY, settled, UP).filter(pl.col("item_id") == "a")["status"][0] == "done"


def test_fallback_job_follows_the_planned_order():
    frame, _ = valid([{"item_id": "a", "realism": "medium", "duration_s": 7.0},
                      {"item_id": "b", "realism": "high"}, {"item_id": "c", "route": "sora"}])
    jobs = {j.item_id: j for j in clip_jobs(plan_run(frame, POLICY, History(), UP))}
    moved = fallback_job(jobs["a"], "model gone")
    assert (moved.route, moved.model, moved.width, moved.height) == ("wan", "wan2.1-t2v-1.3b", 832, 480)
    assert moved.est_cost_usd > 0 and moved.fingerprint == jobs["a"].fingerprint and moved.fallbacks == ()
    assert "no fallback left" in fallback_job(moved, "GPU gone")
    assert "no fallback left" in fallback_job(jobs["b"], "model gone")  # high: sora only
    assert "catalog forces it" in fallback_job(jobs["c"], "model gone")


def test_the_catalog_may_name_only_the_policys_routes():
    good, rejects = validate_catalog(catalog([{"route": "wan"}, {"route": "gateway-b"}, {"route": " "}]),
                                     list(POLICY.routes))
    why = {r["item_id"]: r["reason"] for r in rejects.iter_rows(named=True)}
    assert good["item_id"].to_list() == ["i0"]
    assert "must be one of wan | sora, got 'gateway-b' (the policy's routes)" == why["i1"]
    assert "route is blank" in why["i2"]


def test_a_catalog_written_with_the_older_provider_column_still_routes():
    from vidbatch.errors import CatalogError

    old = catalog([{"route": "sora"}, {"route": "nowhere"}]).rename({"route": "provider"})
    good, rejects = validate_catalog(old, list(POLICY.routes))
    assert good.select("item_id", "route").rows() == [("i0", "sora")] and "provider" not in good.columns
    assert rejects.select("item_id", "column").rows() == [("i1", "route")]
    both = catalog([{"route": "sora"}]).with_columns(pl.col("route").alias("provider"))
    with pytest.raises(CatalogError, match="both 'route' and 'provider', its older name"):
        validate_catalog(both, list(POLICY.routes))


def test_a_job_in_flight_is_resumed_on_the_route_that_holds_it_whatever_its_kind(tmp_path):
    from tests.conftest import SHIPPED_DEMO_POLICY
    from vidbatch.policy import load_policy

    policy = load_policy(SHIPPED_DEMO_POLICY)
    frame, _ = valid([{"item_id": "a", "realism": "low", "aspect": "9:16"}])
    common = dict(run_id="run-1", night="2026-11-23", campaign="c1", route="wan-hosted", model="wan2.1-t2v-turbo",
                  est_cost_usd=0.18, reservation_id="r-a", item_id="a", fingerprint=frame["fingerprint"][0])
    store = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.append([ledger_row(status="reserved", **common), ledger_row(status="submitted", job_id="task-1", **common)])
    history = store.history(history_keys(frame), "2026-11-24")
    job, = clip_jobs(plan_run(frame, policy, history, priced(policy)))
    assert (job.route, job.width, job.height, job.resume_job_ids) == ("wan-hosted", 480, 832, ("task-1",))
    assert job.est_cost_usd == 0.18  # already reserved; the low item's first choice (wan) is not asked again
    row = plan_run(frame, policy, history, priced(policy, {"wan-hosted": "no API key"})).row(0, named=True)
    assert row["status"] == "deferred"
    assert row["reason"].startswith("job(s) task-1 in flight at wan-hosted, which is unavailable (no API key)")
