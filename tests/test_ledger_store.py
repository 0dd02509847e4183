"""The ledger store on a real database file: caps checked and reserved in one transaction, by
several real processes at once; items never made twice; old Parquet ledgers imported once."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import vidbatch.ledger_store
from vidbatch.errors import StorageError
from vidbatch.ledger import OPTIONAL_COLUMNS, SCORE_COLUMNS, ledger_frame, ledger_row, new_reservation_id
from vidbatch.ledger_store import LedgerStore, open_ledger
from vidbatch.micros import micros, micros_expr
from vidbatch.policy import Caps
from vidbatch.refusals import Refused
from vidbatch.storage import open_root

NIGHT = "2026-11-25"
CAPS = Caps(night_usd=2.0, campaign_usd=1.5, item_usd=0.5, timezone="UTC")


def reservation(run_id: str, item: str, usd: float, campaign: str = "c", night: str = NIGHT, fp: str = "f") -> dict:
    return ledger_row(run_id=run_id, night=night, item_id=item, campaign=campaign, fingerprint=fp, status="reserved",
                      route="sora", model="m", est_cost_usd=usd, reservation_id=new_reservation_id())


def closing(row: dict, status: str, usd: float, night: str = NIGHT) -> dict:
    return {**row, "status": status, "cost_usd": usd, "night": night}


def assert_spend_kept(store: LedgerStore) -> None:
    """night_spend (kept with each write) equals the spent rows summed afresh, per night, campaign and run."""
    from sqlalchemy import select

    from vidbatch.ledger import SPENT
    from vidbatch.ledger_store.schema import night_spend

    with store._reading() as conn:
        kept = {(n, c, r): amount for n, c, r, amount in conn.execute(select(night_spend)) if amount}
    rows = store.frame().filter(pl.col("status").is_in(SPENT)).group_by("night", "campaign", "run_id").agg(
        micros_expr(pl.col("cost_usd")).sum())
    summed = {(n, c or "", r or ""): amount for n, c, r, amount in rows.iter_rows() if amount}
    assert kept == summed  # micro-dollars: exactly


@pytest.fixture
def store(ledger_url) -> LedgerStore:
    return LedgerStore(ledger_url)


def test_caps_refuse_with_who_committed_what(store):
    ledger = store
    with ledger.running("run-a"), ledger.running("run-b"):
        assert ledger.reserve(reservation("run-a", "i1", 0.5), CAPS) is None
        assert ledger.reserve(reservation("run-b", "i2", 0.5, campaign="d"), CAPS) is None
        refused = ledger.reserve(reservation("run-a", "i3", 0.6), CAPS)
        assert (refused.kind, refused.text) == (Refused.ITEM_CAP, "item cap $0.50 is below the estimate $0.60")
        assert ledger.reserve(reservation("run-a", "i4", 0.5), CAPS) is None
        assert ledger.reserve(reservation("run-a", "i5", 0.5), CAPS) is None  # exactly at both caps
        assert str(ledger.reserve(reservation("run-a", "i6", 0.1), CAPS)) == \
            "campaign cap $1.50 reached: $1.50 committed ($1.50 by this run)"
        assert str(ledger.reserve(reservation("run-b", "i7", 0.1, campaign="d"), CAPS)) == \
            "night cap $2.00 reached: $2.00 committed ($0.50 by this run, $1.50 by run run-a)"
    assert ledger.committed(NIGHT).night == micros(2.0)
    assert ledger.frame().filter(pl.col("status") == "reserved").height == 4  # a refusal writes nothing


def test_settled_money_replaces_the_estimate_and_released_frees_it(store):
    ledger = store
    a, b = reservation("r", "i1", 0.5), reservation("r", "i2", 0.5)
    assert ledger.reserve(a, CAPS) is None and ledger.reserve(b, CAPS) is None
    ledger.append([closing(a, "settled", 0.2), closing(b, "released", 0.0)])
    committed = ledger.committed(NIGHT)
    assert committed.night == micros(0.2) and committed.by_campaign == {"c": micros(0.2)}


def test_an_item_held_by_a_live_run_is_not_made_twice_and_a_dead_runs_is_taken_over(store):
    ledger = store
    with ledger.running("live"):
        assert ledger.reserve(reservation("live", "i1", 0.3), CAPS) is None
        refused = ledger.reserve(reservation("other", "i1", 0.3), CAPS)
        assert refused.kind == Refused.HELD_ELSEWHERE and refused.other_run == "live" and refused.another_run_has_it
        assert refused.text.startswith("run live is making this item now") and refused.text.endswith("not made twice")
        assert ledger.reserve(reservation("other", "i1", 0.3, fp="changed"), CAPS) is None  # new work
    # "live" has ended: its open reservation is taken over, charged at its estimate
    assert ledger.reserve(reservation("next", "i1", 0.3), CAPS) is None
    rows = ledger.frame()
    taken = rows.filter(pl.col("status") == "failed")
    assert taken.height == 1 and taken["cost_usd"][0] == 0.3 and "taken over by run next" in taken["reason"][0]


def test_a_killed_process_is_dead_at_once_on_its_own_host(ledger_url):
    url = ledger_url
    code = ("import sys, time\nfrom vidbatch.ledger_store import LedgerStore\n"
            f"s = LedgerStore({url!r})\n"
            "with s.running('doomed'):\n    print('up', flush=True); time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up"
    ledger = LedgerStore(url)
    assert "doomed" in ledger.live_runs()
    child.kill()
    child.wait()
    assert "doomed" not in ledger.live_runs()


def test_rows_of_a_reservation_are_filed_under_its_night(store):
    ledger = store
    row = reservation("r1", "i1", 0.4, night="2026-11-24")
    assert ledger.reserve(row, CAPS) is None
    ledger.append([{**row, "status": "submitted", "job_id": "video_1", "night": "2026-11-25", "run_id": "r2"},
                   closing({**row, "run_id": "r2"}, "settled", 0.4, night="2026-11-25")])  # resumed a night later
    assert set(ledger.frame()["night"]) == {"2026-11-24"}
    assert ledger.committed("2026-11-24").night == micros(0.4)
    assert ledger.committed("2026-11-25").night == 0
    assert_spend_kept(ledger)


def test_an_old_parquet_ledger_is_imported_once_and_left_in_place(tmp_path):
    root = open_root(str(tmp_path / "out"))
    old = ledger_frame([ledger_row(run_id="old", night="2026-10-01", item_id=f"i{n}", campaign="c",
                                   status="settled", cost_usd=0.1, reservation_id=f"r{n}") for n in range(30)])
    root.append_part(old.head(10), "ledger")
    root.append_part(old.tail(20), "ledger")
    code = ("from vidbatch.ledger_store import open_ledger\nfrom vidbatch.storage import open_root\n"
            f"print(open_ledger(open_root({str(tmp_path / 'out')!r})).frame().height)")
    first = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    assert [p.communicate()[0].strip() for p in first] == ["30"] * 3  # three processes at once: imported once
    assert len(list((tmp_path / "out" / "ledger").glob("part-*.parquet"))) == 2
    assert open_ledger(root).frame().sort("item_id")["cost_usd"].sum() == pytest.approx(3.0)


def test_stitch_records_live_in_the_ledger_and_old_parquet_parts_are_imported_once(tmp_path):
    """Revision 0006: a root's `storyboards/part-*.parquet` (before it) reach the ledger database once;
    new stitches are rows there, so no run lists the storage to learn what it stitched."""
    from datetime import datetime, timezone

    from vidbatch.storyboards import STITCH_SCHEMA

    root = open_root(str(tmp_path / "out"))
    old = {"run_id": "old", "campaign": "c", "storyboard_id": "b1", "stitch_fingerprint": "f1", "asset_uri": "a",
           "seconds": 9.0, "scenes": 3, "mode": "stream copy", "created_at": datetime(2026, 10, 1, tzinfo=timezone.utc)}
    root.append_part(pl.DataFrame([old], schema=STITCH_SCHEMA), "storyboards")
    store = open_ledger(root)
    store.record_stitch({**old, "run_id": "new", "storyboard_id": "b2", "created_at": datetime.now(timezone.utc)})
    again = open_ledger(root)  # the old part is not imported twice
    assert again.stitches()["storyboard_id"].to_list() == ["b1", "b2"]
    assert again.stitches(["other"]).height == 0
    assert again.stitches().schema == pl.Schema(STITCH_SCHEMA)


WORKER = """
import json, random, sys
from vidbatch.ledger import ledger_row, new_reservation_id
from vidbatch.ledger_store import LedgerStore
from vidbatch.policy import Caps
url, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
caps = Caps(night_usd=5.0, campaign_usd=3.0, item_usd=0.9, timezone="UTC")
ledger, rng, granted = LedgerStore(url), random.Random(seed), 0
with ledger.running(f"proc-{seed}"):
    for n in range(count):
        usd = round(rng.uniform(0.05, 0.9), 4)
        row = ledger_row(run_id=f"proc-{seed}", night="2026-11-25", item_id=f"p{seed}-{n}", campaign=rng.choice("ab"),
                         fingerprint="f", status="reserved", est_cost_usd=usd, reservation_id=new_reservation_id())
        if ledger.reserve(row, caps) is None:
            granted += 1
            held = usd
            for _ in range(rng.randint(0, 3)):  # a render that outgrows its estimate asks to grow, maybe refused
                more = round(held * rng.uniform(1.0, 1.6), 4)
                if ledger.raise_reservation({**row, "status": "raised", "est_cost_usd": more}, caps) is None:
                    held = max(held, more)
            actual = round(held * rng.uniform(0.2, 1.0), 4)  # settles at or under what it holds, or releases
            status = rng.choice(["settled", "released", "failed"])
            ledger.append([{**row, "status": status, "cost_usd": 0.0 if status == "released" else actual}])
print(json.dumps({"granted": granted}))
"""


def test_eight_processes_reserving_and_growing_at_once_never_commit_past_a_cap(ledger_url):
    url = ledger_url
    LedgerStore(url)  # migrated once, before the crowd
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(seed), "40"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in range(8)]
    results = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    granted = sum(json.loads(out)["granted"] for out, _ in results)
    rows = LedgerStore(url).frame()
    assert rows.filter(pl.col("status") == "reserved").height == granted > 0
    # Replay the ledger in write order: committed money never exceeded a cap at any moment.
    night, campaign, reserved = 0.0, {"a": 0.0, "b": 0.0}, {}
    for row in rows.iter_rows(named=True):
        if row["status"] == "reserved":
            reserved[row["reservation_id"]] = row["est_cost_usd"]
            delta = row["est_cost_usd"]
        elif row["status"] == "raised":  # what the reservation holds from now on
            delta = row["est_cost_usd"] - reserved[row["reservation_id"]]
            reserved[row["reservation_id"]] = row["est_cost_usd"]
        else:
            delta = row["cost_usd"] - reserved.pop(row["reservation_id"])
        night += delta
        campaign[row["campaign"]] += delta
        assert night <= 5.0 + 1e-9 and max(campaign.values()) <= 3.0 + 1e-9
    refusals = 8 * 40 - granted
    assert refusals > 0  # the caps did bind
    assert rows.filter(pl.col("status") == "raised").height > 0  # and reservations grew under them
    assert_spend_kept(LedgerStore(url))  # eight writers at once: the kept sums are the rows' sums


def test_history_reads_the_items_asked_about_and_what_is_open(store):
    ledger = store
    old = reservation("r0", "i1", 0.4, night="2026-11-20", fp="f0")
    new, rejected = reservation("r1", "i1", 0.4, fp="f1"), reservation("r2", "i1", 0.4, fp="f2")
    other, flying = reservation("r1", "i2", 0.3), reservation("r1", "i3", 0.5)
    ledger.append([old, closing(old, "settled", 0.4, night="2026-11-20"), new, closing(new, "settled", 0.35),
                   rejected, closing(rejected, "settled", 0.4), {**closing(rejected, "qa_failed", 0.0)},
                   other, closing(other, "settled", 0.3),
                   flying, {**flying, "status": "submitted", "job_id": "video_1"},
                   {**flying, "status": "submitted", "job_id": "video_2"}])
    keys = pl.DataFrame({"campaign": ["c", "c"], "item_id": ["i1", "i3"]})
    history = ledger.history(keys, NIGHT)
    # i1's latest clip that passed QA (f2 failed it); i2 was not asked about
    assert history.settled.select("item_id", "fingerprint", "cost_usd").rows() == [("i1", "f1", 0.35)]
    assert history.in_flight.select("item_id", "job_ids").rows() == [("i3", ["video_1", "video_2"])]
    assert history.committed.night == micros(0.35 + 0.4 + 0.3 + 0.5)  # spent + i3's open estimate
    assert ledger.settled_for(keys.head(0)).is_empty()


def test_spend_adds_up_like_the_rows(store):
    ledger = store
    rows = []
    for n, (status, usd) in enumerate([("settled", 0.2), ("failed", 0.1), ("released", 0.0), ("settled", 0.3)]):
        row = reservation(f"run{n % 2}", f"i{n}", 0.4, campaign="ab"[n % 2], night=NIGHT if n < 3 else "2026-11-26")
        rows += [row, closing(row, status, usd, night=row["night"])]
    rows.append(ledger_row(run_id="run0", night=NIGHT, item_id="i9", campaign="a", route="wan", status="deferred"))
    rows.append(ledger_row(run_id="run0", night=NIGHT, item_id="bad", campaign="a", status="rejected"))
    ledger.append(rows)
    by_night = {r["night"]: r for r in ledger.spend(["night"]).iter_rows(named=True)}
    assert by_night[NIGHT] == {"night": NIGHT, "clips": 1, "failed_calls": 1, "deferred": 1,
                               "est_usd": pytest.approx(1.2), "actual_usd": pytest.approx(0.3)}
    assert by_night["2026-11-26"]["actual_usd"] == pytest.approx(0.3)
    run0 = ledger.spend([], run_id="run0").row(0, named=True)
    assert (run0["clips"], run0["est_usd"], run0["actual_usd"]) == (1, pytest.approx(0.8), pytest.approx(0.2))
    assert ledger.spend([], run_id="nobody").row(0) == (0, 0, 0, 0.0, 0.0)
    assert ledger.spend(["campaign"], nights=[NIGHT])["campaign"].to_list() == ["a", "b"]
    assert ledger.nights(1) == ["2026-11-26"]


def test_a_dead_workers_open_reservations_are_charged_once(store):
    ledger = store
    held = [reservation("run", f"i{n}", 0.25) for n in range(3)]
    for row in held:
        assert ledger.reserve(row, CAPS) is None
    ledger.append([closing(held[0], "settled", 0.2)])
    assert ledger.fail_open("run", ["i0", "i1"], "GPU batch b1 ended Crashed mid-clip") == 1  # i0 was settled
    assert ledger.fail_open("run", ["i0", "i1"], "again") == 0  # closed once, never twice
    failed = ledger.frame().filter(pl.col("status") == "failed")
    assert failed.select("item_id", "cost_usd").rows() == [("i1", 0.25)]
    assert failed["reason"][0] == "GPU batch b1 ended Crashed mid-clip; charged the estimate"
    assert ledger.committed(NIGHT).night == micros(0.2 + 0.25 + 0.25)  # i2 still open
    assert_spend_kept(ledger)


def test_revision_0009_turns_float_money_into_exact_micro_dollars_in_place(ledger_url):
    """A ledger at 0008 (money in Float columns) upgrades in place: every amount becomes the
    integer vidbatch.micros.micros gives it (half away from zero), night_spend their exact sum, the
    open reservation keeps what it holds; and 0008 comes back on a downgrade."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import MetaData, Table, create_engine, insert, select, text

    amounts = [0.1, 0.2, 0.025833333333, 0.0000015, 0.0000004, 12.3456785, 0.3]
    rows = []
    for n, usd in enumerate(amounts):
        held = reservation("r", f"i{n}", usd)
        rows += [held, closing(held, "settled", usd)]
    still_open = reservation("r", "open", 0.0000025)
    rows.append(still_open)
    engine = create_engine(ledger_url)
    config = Config()
    config.set_main_option("script_location", str(Path(vidbatch.ledger_store.__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008")
        table = Table("ledger_rows", MetaData(), autoload_with=conn)  # as 0008 made it: no score columns yet
        conn.execute(insert(table), [{k: v for k, v in row.items() if k in table.c} for row in rows])
        conn.execute(insert(Table("open_reservations", MetaData(), autoload_with=conn)), [{  # as the store kept it
            **{k: still_open[k] for k in ("reservation_id", "night", "campaign", "item_id", "fingerprint", "run_id",
                                          "est_cost_usd")}, "row_id": len(rows)}])
    engine.dispose()
    ledger = LedgerStore(ledger_url)  # 0008 -> head
    with ledger._reading() as conn:
        stored = conn.execute(text("SELECT cost_micros FROM ledger_rows WHERE status = 'settled' ORDER BY id"))
        stored = stored.scalars()
        assert list(stored) == [micros(usd) for usd in amounts] == [100_000, 200_000, 25_833, 2, 0, 12_345_679, 300_000]
        held = conn.execute(text("SELECT est_cost_micros FROM open_reservations")).scalars().all()
    assert held == [3]  # 2.5 micro-dollars, half away from zero
    assert ledger.committed(NIGHT).night == sum(micros(usd) for usd in amounts) + 3
    assert_spend_kept(ledger)
    assert ledger.frame().filter(pl.col("status") == "settled")["cost_usd"].to_list() == \
        [micros(usd) / 1e6 for usd in amounts]
    ledger.engine.dispose()
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
        back = conn.execute(select(Table("ledger_rows", MetaData(), autoload_with=conn).c.cost_usd).where(
            text("status = 'settled'"))).scalars().all()
        command.upgrade(config, "head")
    engine.dispose()
    assert back == [micros(usd) / 1e6 for usd in amounts]


def test_revision_0010_keeps_each_delivered_clips_scores_and_older_rows_have_none(ledger_url):
    """A ledger at 0009 (no score columns) upgrades in place: its rows read with null scores, a
    delivered clip's scores are kept and read back, and a downgrade to 0009 drops only them."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import MetaData, Table, create_engine, insert

    from vidbatch.ledger import Reservation
    from vidbatch.scores import ClipScores

    old = reservation("r", "old", 0.1)
    engine = create_engine(ledger_url)
    config = Config()
    config.set_main_option("script_location", str(Path(vidbatch.ledger_store.__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
        table = Table("ledger_rows", MetaData(), autoload_with=conn)
        conn.execute(insert(table), [{**{k: v for k, v in old.items() if k in table.c and "cost" not in k},
                                      "est_cost_micros": 100_000, "cost_micros": 0}])
    engine.dispose()
    ledger = LedgerStore(ledger_url)  # 0009 -> head
    held = reservation("r", "new", 0.2)
    scores = ClipScores(adherence=0.31, coherence=0.97, drift=0.12, motion=1.5, jitter=0.05, model="tiny-clip")
    ledger.append([held, closing(held, "settled", 0.2),
                   Reservation.of_row(held).delivered("s3://b/assets/c/new.mp4", "ab" * 32, **scores.ledger_fields())])
    frame = ledger.frame()
    assert frame.filter(pl.col("item_id") == "old").select(*SCORE_COLUMNS).row(0) == (None,) * 6
    delivered = frame.filter(pl.col("status") == "delivered").row(0, named=True)
    assert {k: delivered[k] for k in SCORE_COLUMNS} == {"adherence": 0.31, "coherence": 0.97, "drift": 0.12,
                                                         "motion": 1.5, "jitter": 0.05, "score_model": "tiny-clip"}
    ledger.engine.dispose()
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
        assert not set(SCORE_COLUMNS) & set(Table("ledger_rows", MetaData(), autoload_with=conn).c.keys())
        command.upgrade(config, "head")
    engine.dispose()


def test_a_ledger_made_before_the_open_reservations_table_upgrades(ledger_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import MetaData, Table, create_engine, insert

    engine = create_engine(ledger_url)
    open_one, settled = reservation("r", "i1", 0.4), reservation("r", "i2", 0.3)
    with engine.begin() as conn:  # the schema as revision 0001 left it, with rows
        config = Config()
        config.set_main_option("script_location", str(Path(vidbatch.ledger_store.__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        old = [open_one, settled, closing(settled, "settled", 0.3),
               {**open_one, "status": "submitted", "job_id": "video_1"}]
        table = Table("ledger_rows", MetaData(), autoload_with=conn)  # as 0001 made it: the route was `provider`
        conn.execute(insert(table), [{("provider" if k == "route" else k): v for k, v in row.items()
                                      if k not in OPTIONAL_COLUMNS} for row in old])  # no 0003/0004 columns yet
    engine.dispose()
    ledger = LedgerStore(ledger_url)  # migrates to the newest revision, filling open_reservations
    assert ledger.committed(NIGHT).night == micros(0.7)  # revision 0008 summed what was spent
    assert_spend_kept(ledger)
    assert set(ledger.frame()["route"]) == {"sora"}  # revision 0005 named the column for what it holds
    keys = pl.DataFrame({"campaign": ["c"], "item_id": ["i1"]})
    assert ledger.history(keys, NIGHT).in_flight.select("item_id", "job_ids").rows() == [("i1", ["video_1"])]


STALLED = """
import sys, time
from vidbatch.ledger import ledger_row
from vidbatch.ledger_store import LedgerStore, queries
from vidbatch.policy import Caps
real = queries.committed_by
def stall(conn, night):  # inside the reservation's transaction, holding the write lock
    found = real(conn, night)
    print("inside", flush=True)
    time.sleep(600)
    return found
queries.committed_by = stall
LedgerStore(sys.argv[1]).reserve(ledger_row(run_id="doomed", night="2026-11-25", item_id="x", campaign="c",
                                            status="reserved", est_cost_usd=0.1, reservation_id="doomed-1"),
                                 Caps(night_usd=2.0, campaign_usd=2.0, item_usd=1.0, timezone="UTC"))
"""


def test_a_process_killed_inside_a_reservation_leaves_no_lock(ledger_url):
    LedgerStore(ledger_url)
    child = subprocess.Popen([sys.executable, "-c", STALLED, ledger_url], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "inside"
    child.kill()  # SIGKILL: no rollback, no goodbye
    child.wait()
    ledger = LedgerStore(ledger_url)
    assert ledger.reserve(reservation("next", "y", 0.5), CAPS) is None  # the lock went with the process
    assert ledger.frame()["run_id"].to_list() == ["next"]  # nothing of the killed transaction


def test_a_ledger_url_left_unrendered_by_prefect_deploy_is_refused(tmp_path, monkeypatch):
    from vidbatch.errors import StorageError
    from vidbatch.ledger_store import LEDGER_URL_ENV, ledger_url

    monkeypatch.setenv(LEDGER_URL_ENV, "{{ $VIDBATCH_LEDGER_URL }}")
    with pytest.raises(StorageError, match="unrendered template.*before `prefect deploy`"):
        ledger_url(open_root(str(tmp_path / "out")))
    monkeypatch.setenv(LEDGER_URL_ENV, "")  # deployed empty: the SQLite file beside a local root
    assert ledger_url(open_root(str(tmp_path / "out"))).endswith("/out/ledger.db")


def test_roots_sharing_one_database_each_bring_their_old_parquet_ledger(tmp_path):
    shared = f"sqlite:///{tmp_path / 'team.db'}"
    for name in ("east", "west"):
        root = open_root(str(tmp_path / name))
        root.append_part(ledger_frame([ledger_row(run_id=name, night="2026-10-01", item_id=f"{name}-i", campaign="c",
                                                  status="settled", cost_usd=0.1, reservation_id=f"{name}-r")]),
                         "ledger")
        open_ledger(root, shared)
    assert sorted(LedgerStore(shared).frame()["run_id"]) == ["east", "west"]
    with pytest.raises(StorageError, match="no ledger: give an output root"):
        open_ledger(None)


def test_rows_already_in_the_ledger_are_not_imported_twice_from_another_source(tmp_path, store):
    rows = ledger_frame([ledger_row(run_id="r", night="2026-10-01", item_id=f"i{n}", campaign="c", status=status,
                                    route="wan", cost_usd=0.1 if status == "settled" else 0.0, est_cost_usd=0.1,
                                    reservation_id=f"res{n}") for n in range(3) for status in ("reserved", "settled")])
    assert store.import_frame(rows, "root/ledger") == 6
    exported = tmp_path / "export"
    from vidbatch.ledger_store.parquet import export_nights, read_ledger_parquet

    export_nights(store, str(exported))
    assert store.import_frame(read_ledger_parquet(str(exported)), str(exported)) == 0  # the same rows, elsewhere
    more = pl.concat([rows, ledger_frame([ledger_row(run_id="r", night="2026-10-01", item_id="new", campaign="c",
                                                     status="deferred")])])
    assert store.import_frame(more, "another/copy") == 1
    assert store.spend([]).row(0, named=True)["actual_usd"] == pytest.approx(0.3)
    assert_spend_kept(store)  # an import rebuilds the nights it touched
    assert store.committed("2026-10-01").night == micros(0.3)


def test_a_reservation_grows_under_the_caps_and_a_dead_run_is_charged_what_it_held(store):
    """A render that outgrows its estimate raises its reservation, in the same lock and under the
    same caps as reserving; what it holds counts everywhere money is committed."""
    ledger = store
    with ledger.running("run-a"), ledger.running("run-b"):
        a = reservation("run-a", "i1", 0.1)
        assert ledger.reserve(a, CAPS) is None
        assert ledger.reserve(reservation("run-b", "i2", 0.5), CAPS) is None
        raised = lambda usd: {**a, "status": "raised", "est_cost_usd": usd, "reason": "outgrew"}  # noqa: E731
        assert ledger.raise_reservation(raised(0.45), CAPS) is None
        assert ledger.committed(NIGHT).night == micros(0.95)  # what it holds now, not its estimate
        assert ledger.raise_reservation(raised(0.3), CAPS) is None  # never shrinks: nothing written
        assert str(ledger.raise_reservation(raised(0.55), CAPS)) == "item cap $0.50 is below $0.55"
        assert ledger.reserve(reservation("run-b", "i3", 0.5), CAPS) is None
        assert ledger.reserve(reservation("run-b", "i4", 0.05), CAPS) is None  # campaign c holds 1.50 now
        refused = ledger.raise_reservation(raised(0.5), CAPS)
        assert refused.kind == Refused.CAMPAIGN_CAP and refused.text.startswith("campaign cap $1.50 reached: $1.50")
        assert ledger.committed(NIGHT).night == micros(1.50)  # a refusal writes nothing
    ledger.append([closing(a, "settled", 0.4)])
    assert str(ledger.raise_reservation(raised(0.46), CAPS)) == f"reservation {a['reservation_id'][:8]} is not open"
    b = reservation("run-c", "i9", 0.1, campaign="e")
    with ledger.running("run-c"):
        assert ledger.reserve(b, CAPS) is None
        assert ledger.raise_reservation({**b, "status": "raised", "est_cost_usd": 0.3}, CAPS) is None
    assert ledger.fail_open("run-c", ["i9"], "worker died") == 1  # closed at what it held, not its first estimate
    charged = ledger.frame().filter((pl.col("reservation_id") == b["reservation_id"]) & (pl.col("status") == "failed"))
    assert charged["cost_usd"].to_list() == [pytest.approx(0.3)]


def test_measured_prices_are_the_newest_clips_high_percentile_with_a_margin(store):
    from vidbatch.measured import MARGIN, RECENT

    rows = []
    for n in range(RECENT + 10):  # the 10 oldest (slow) ones fall out of the window
        r = reservation("r", f"i{n}", 0.1)
        rows += [r, {**closing(r, "settled", 0.1), "route": "wan", "price_key": "m|480p|stock",
                     "gpu_s_per_shot": 100.0 if n < 10 else float(n)}]
    old = reservation("r", "long-ago", 0.1, night="2026-10-01")  # more than NIGHTS before: not read
    rows += [old, {**closing(old, "settled", 0.1, night="2026-10-01"), "route": "wan", "price_key": "x|480p|stock",
                   "gpu_s_per_shot": 999.0}]
    store.append(rows)
    measured = store.measured(NIGHT)
    assert set(measured["wan"]) == {"m|480p|stock"}
    figure = measured["wan"]["m|480p|stock"]
    assert figure.clips == RECENT
    assert figure.gpu_s_per_shot == pytest.approx(55.0 * MARGIN)  # p90 of 10..59, the higher one
    assert figure.source() == f"measured: p90 of {RECENT} clip(s) x {MARGIN:g}"
