"""The ledger store: the one owner of money.

Every ledger row is written and read here, in a database: a SQLite file beside a local output
root by default (WAL, busy timeout, write transactions begun IMMEDIATE, so they take the write
lock up front), or any SQLAlchemy URL shared by many machines (`VIDBATCH_LEDGER_URL`, `--ledger`).
A reservation is one transaction: it checks the item, campaign and night caps against everything
committed (spent plus open reservations, by every run on every machine) and inserts the
`reserved` row, or refuses with the reason. An item whose open reservation belongs to another
live run is refused too: it is never made twice. Runs register and beat a heartbeat; an open
reservation whose run stopped beating is taken over (closed at its estimate) by the next run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import zlib
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
from alembic import command
from alembic.config import Config
from sqlalchemy import and_, exists, func, insert, select, text, true, update
from sqlalchemy.engine import Connection

from vidbatch.errors import LedgerUnavailable
from vidbatch.ledger import LEDGER_SCHEMA, OPTIONAL_COLUMNS, History
from vidbatch.ledger_store import limits, queries, writes
from vidbatch.ledger_store.connection import connected, make_engine
from vidbatch.ledger_store.schema import MONEY_COLUMNS, imports, ledger_rows, open_reservations, runs, stitches
from vidbatch.measured import RECENT, measured_prices, since_night
from vidbatch.micros import micros, micros_expr
from vidbatch.money import Committed, over_caps, over_item_cap, usd_text
from vidbatch.refusals import Refusal, Refused
from vidbatch.policy import Caps
from vidbatch.storyboards import STITCH_SCHEMA

__all__ = ["LedgerStore", "HEARTBEAT_S", "DEAD_AFTER_S"]

HEARTBEAT_S = 15.0  # how often a live run says so
DEAD_AFTER_S = 120.0  # a run silent this long is dead: its open reservations may be taken over
IMPORT_SLICE = 5000  # rows an import turns into dicts and writes at a time
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LedgerStore:
    """One ledger database. Thread-safe; a run opens one (`open_ledger`) and passes it on."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.postgres = self.engine.dialect.name == "postgresql"
        # SQLite: this process's writers queue here, woken the moment the writer before them commits;
        # at SQLite's lock they would poll it, asleep up to 100 ms between tries (its busy handler).
        # PostgreSQL's advisory locks wake their waiters themselves.
        self._writer = contextlib.nullcontext() if self.postgres else threading.Lock()
        with self._writing() as conn:  # one process migrates; the others wait for its lock
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def _writing(self, lock_key: str = "vidbatch-ledger"):
        """A write transaction that holds the ledger's write lock (SQLite: BEGIN IMMEDIATE;
        PostgreSQL: an advisory lock on `lock_key`, e.g. one night) until it commits."""
        with self._writer, connected(self.engine, self.url) as conn:
            conn = conn.execution_options(immediate=True)
            with conn.begin():
                if self.postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(lock_key.encode())})
                yield conn

    @contextlib.contextmanager
    def _reading(self, snapshot: bool = False):
        """A connection for reads (`snapshot`: in one transaction, so several reads agree)."""
        with connected(self.engine, self.url) as conn:
            if snapshot:
                with conn.begin():
                    yield conn
            else:
                yield conn

    # ---- writes ------------------------------------------------------------------------------

    def append(self, rows: list[dict]) -> None:
        """Append rows (job ids, closings, deferrals, rejects, QA failures). A row of an existing
        reservation is filed under that reservation's night, whichever night it is written on."""
        if not rows:
            return
        with self._writing() as conn:
            ids = {r["reservation_id"] for r in rows if r.get("reservation_id") and r["status"] != "reserved"}
            nights = (
                dict(
                    conn.execute(
                        select(ledger_rows.c.reservation_id, ledger_rows.c.night).where(
                            ledger_rows.c.status == "reserved", ledger_rows.c.reservation_id.in_(ids)
                        )
                    ).all()
                )
                if ids
                else {}
            )
            writes.insert_rows(conn, [{**r, "night": nights.get(r.get("reservation_id"), r["night"])} for r in rows])

    def reserve(self, row: dict, caps: Caps, ahead: Committed = Committed()) -> Refusal | None:
        """Insert the `reserved` row if the caps hold and no live run holds this item; None when
        reserved, else why not (nothing is written then). `ahead`: money this run keeps for its
        higher-priority items that have not reserved yet (counted as committed)."""
        estimate = micros(row["est_cost_usd"])  # what the ledger will hold, and every cap compares
        refused = over_item_cap(caps, estimate, f"the estimate {usd_text(row['est_cost_usd'])}")
        if refused:
            return refused
        with self._writing(f"vidbatch-night-{row['night']}") as conn:
            held = self._held_elsewhere(conn, row)
            if held:
                return held
            refused = over_caps(queries.committed_by(conn, row["night"]), caps, row, estimate, ahead)
            if refused:
                return refused
            writes.insert_rows(conn, [row])
        return None

    def raise_reservation(self, row: dict, caps: Caps, ahead: Committed = Committed()) -> Refusal | None:
        """Grow an open, unpaid reservation to `row["est_cost_usd"]` in all (a `raised` row) if the
        caps hold the difference; None when raised, else why not (nothing is written then). The
        same rule as `reserve`, in the same lock: a call that outgrows its estimate is held to the
        caps on what it will really cost, before it spends it."""
        estimate = micros(row["est_cost_usd"])
        refused = over_item_cap(caps, estimate, usd_text(row["est_cost_usd"]))
        if refused:
            return refused
        with self._writing(f"vidbatch-night-{row['night']}") as conn:
            holding = conn.execute(
                select(open_reservations.c.est_cost_micros).where(
                    open_reservations.c.reservation_id == row["reservation_id"]
                )
            ).scalar()
            if holding is None:
                return Refusal(Refused.NOT_OPEN, f"reservation {row['reservation_id'][:8]} is not open")
            if estimate <= holding:
                return None
            refused = over_caps(queries.committed_by(conn, row["night"]), caps, row, estimate - holding, ahead)
            if refused:
                return refused
            writes.insert_rows(conn, [row])
        return None

    def _held_elsewhere(self, conn: Connection, row: dict) -> Refusal | None:
        """Why this item is not to be made now, or None: another run settled it already (same
        fingerprint, passed QA), or another live run holds an open reservation of it. A holder that
        stopped beating is dead: its reservation is closed at its estimate and this run goes on."""
        same_item = and_(
            ledger_rows.c.campaign == row["campaign"],
            ledger_rows.c.item_id == row["item_id"],
            ledger_rows.c.fingerprint == row["fingerprint"],
        )
        qa = ledger_rows.alias("qa")
        made = conn.execute(
            select(ledger_rows.c.run_id).where(
                same_item,
                ledger_rows.c.status == "settled",
                ledger_rows.c.run_id != row["run_id"],
                ~exists().where(
                    qa.c.reservation_id == ledger_rows.c.reservation_id,
                    qa.c.status.in_(("qa_failed", "review_rejected")),
                ),
            )
        ).first()
        if made is not None:
            return Refusal(
                Refused.MADE_ELSEWHERE,
                f"already made by run {made.run_id[:8]} while this run waited; not made twice",
                other_run=made.run_id,
            )
        holders = writes.open_rows(
            conn,
            and_(
                open_reservations.c.campaign == row["campaign"],
                open_reservations.c.item_id == row["item_id"],
                open_reservations.c.fingerprint == row["fingerprint"],
                open_reservations.c.run_id != row["run_id"],
            ),
        )
        for held in holders:
            run = conn.execute(select(runs).where(runs.c.run_id == held["run_id"])).mappings().first()
            if run is not None and _alive(run):
                return Refusal(
                    Refused.HELD_ELSEWHERE,
                    f"run {held['run_id'][:8]} is making this item now "
                    f"(reservation {held['reservation_id'][:8]}); not made twice",
                    other_run=held["run_id"],
                )
            writes.charge_estimates(
                conn,
                [held],
                row["run_id"],
                f"run {held['run_id'][:8]} stopped inside this "
                f"reservation; charged the estimate; taken over by run {row['run_id'][:8]}",
            )
        return None

    def decide(self, rows: list[dict]) -> list[dict]:
        """Record review verdicts (`approved` / `review_rejected` rows) for clips still awaiting
        one, in one transaction: a clip another reviewer decided meanwhile keeps that verdict.
        Returns the rows written."""
        if not rows:
            return []
        with self._writing() as conn:
            waiting = queries.awaiting_review(conn, item_ids=sorted({r["item_id"] for r in rows}))
            pending = set(waiting["reservation_id"])
            written = [r for r in rows if r["reservation_id"] in pending]
            if written:
                writes.insert_rows(conn, written)
        return written

    def awaiting_review(self, *, campaign: str | None = None, item_ids: list[str] | None = None) -> pl.DataFrame:
        """Clips awaiting review (LEDGER_SCHEMA rows, cost_usd as paid), oldest first."""
        with self._reading() as conn:
            return queries.awaiting_review(conn, campaign=campaign, item_ids=item_ids)

    def verdicts(self, item_ids: list[str]) -> dict[tuple[str, str], tuple[str, str | None]]:
        """(campaign, item_id) -> (verdict, reviewer) of the newest review verdict of each of `item_ids`."""
        with self._reading() as conn:
            rows = conn.execute(
                select(ledger_rows.c.campaign, ledger_rows.c.item_id, ledger_rows.c.status, ledger_rows.c.reviewer)
                .where(ledger_rows.c.item_id.in_(item_ids), ledger_rows.c.status.in_(("approved", "review_rejected")))
                .order_by(ledger_rows.c.id)
            ).all()
        return {(r.campaign, r.item_id): (r.status, r.reviewer) for r in rows}

    def fail_open(self, run_id: str, item_ids: list[str], reason: str) -> int:
        """Close `run_id`'s open reservations of `item_ids` as failed at their estimate (a worker died
        inside them: the GPU time was rented); how many. Each keeps exactly one closing row."""
        with self._writing() as conn:
            stale = writes.open_rows(
                conn, and_(open_reservations.c.run_id == run_id, open_reservations.c.item_id.in_(item_ids))
            )
            writes.charge_estimates(conn, stale, run_id, f"{reason}; charged the estimate")
        return len(stale)

    def imported(self, source: str) -> bool:
        """Whether `source` was imported into this ledger already (import_frame records each)."""
        with self._reading() as conn:
            return conn.execute(select(imports.c.source).where(imports.c.source == source)).first() is not None

    def import_frame(self, frame: pl.DataFrame, source: str) -> int:
        """Rows of a Parquet ledger (LEDGER_SCHEMA columns), once per `source`; how many were added.

        A row the ledger already holds (same run, item, status, reservation, job and time) is not
        added again, whatever the source: an export re-imported elsewhere, or a root's old parts
        met again by a database they already reached that way, never count money twice."""
        with self._writing() as conn:
            if conn.execute(select(imports.c.source).where(imports.c.source == source)).first():
                return 0
            frame = frame.with_columns(
                pl.lit(None, LEDGER_SCHEMA[c]).alias(c) for c in OPTIONAL_COLUMNS if c not in frame.columns
            )  # a ledger from before revision 0003
            held = writes.row_keys(conn, frame["run_id"].drop_nulls().unique().to_list())
            last_id = conn.execute(select(func.max(ledger_rows.c.id))).scalar() or 0
            added = 0
            frame = frame.select(
                *(
                    micros_expr(pl.col(c)).fill_null(0).alias(MONEY_COLUMNS[c]) if c in MONEY_COLUMNS else c
                    for c in LEDGER_SCHEMA
                )
            )  # as ledger_rows holds it (schema.stored)
            for part in frame.iter_slices(IMPORT_SLICE):  # memory: one slice of dicts
                rows = [r for r in part.to_dicts() if writes.row_key(r) not in held]
                writes.bulk_insert(conn, rows, self.postgres)
                added += len(rows)
            if self.postgres and added:  # the planner's figures for a table that just grew
                conn.execute(text("ANALYZE ledger_rows"))
            writes.reopen_after(conn, last_id)  # once, after every row is in
            writes.respend_after(conn, last_id)
            conn.execute(insert(imports), [{"source": source, "rows": added, "imported_at": _now()}])
        return added

    def record_stitch(self, row: dict) -> None:
        """A stitched storyboard (STITCH_SCHEMA fields), so that no later run stitches it again."""
        with self._writing() as conn:
            conn.execute(insert(stitches), [row])

    def import_stitches(self, frame: pl.DataFrame, source: str) -> int:
        """An output root's stitch records from before revision 0006 (Parquet), once per `source`."""
        with self._writing() as conn:
            if conn.execute(select(imports.c.source).where(imports.c.source == source)).first():
                return 0
            if frame.height:
                conn.execute(insert(stitches), frame.select(list(STITCH_SCHEMA)).to_dicts())
            conn.execute(insert(imports), [{"source": source, "rows": frame.height, "imported_at": _now()}])
        return frame.height

    # ---- runs --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, run_id: str):
        """Register `run_id` and beat its heartbeat until the block ends."""
        now = _now()
        with self._writing() as conn:
            if conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first():
                conn.execute(update(runs).where(runs.c.run_id == run_id).values(heartbeat_at=now, ended_at=None))
            else:
                conn.execute(
                    insert(runs),
                    [
                        {
                            "run_id": run_id,
                            "host": socket.gethostname(),
                            "pid": os.getpid(),
                            "started_at": now,
                            "heartbeat_at": now,
                        }
                    ],
                )
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    with self._writing() as conn:
                        conn.execute(update(runs).where(runs.c.run_id == run_id).values(heartbeat_at=_now()))
                except LedgerUnavailable as err:  # the run's own writes meet it too, and stop the run
                    logging.getLogger("vidbatch").warning("heartbeat of run %s not written: %s", run_id[:8], err)

        thread = threading.Thread(target=beat, name=f"ledger-heartbeat-{run_id[:8]}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            try:
                with self._writing() as conn:
                    conn.execute(update(runs).where(runs.c.run_id == run_id).values(ended_at=_now()))
            except LedgerUnavailable as err:  # its heartbeat stops: the run reads as dead soon (at once on this host)
                logging.getLogger("vidbatch").warning("the end of run %s not written: %s", run_id[:8], err)

    # ---- a route's limits across runs (vidbatch.ledger_store.limits) ----------------------------

    def take_slot(self, limit_name: str, capacity: int, run_id: str, holder: str) -> bool:
        """One of `limit_name`'s `capacity` slots for `holder` of live run `run_id`, or False when
        live runs hold them all."""
        with self._writing(limit_name) as conn:
            return limits.take_slot(conn, limit_name, capacity, run_id, holder, _now(), _alive)

    def give_slot(self, limit_name: str, holder: str) -> None:
        with self._writing(limit_name) as conn:
            limits.give_slot(conn, limit_name, holder)

    def slots_held(self, limit_name: str) -> int:
        with self._reading() as conn:
            return limits.slots_held(conn, limit_name, _alive)

    def take_submit(self, limit_name: str, per_minute: float, now: float | None = None) -> float:
        """Count a submit against `limit_name`'s rate (0 returned), or say how many seconds until one fits."""
        with self._writing(limit_name) as conn:
            return limits.take_submit(conn, limit_name, per_minute, time.time() if now is None else now)

    # ---- reads -------------------------------------------------------------------------------

    def live_runs(self) -> set[str]:
        """Runs that have not ended and beat their heartbeat lately."""
        with self._reading() as conn:
            return {
                run["run_id"]
                for run in conn.execute(select(runs).where(runs.c.ended_at.is_(None))).mappings()
                if _alive(run)
            }

    def committed(self, night: str) -> Committed:
        """What `night` has committed across every run: spent plus open reservations."""
        with self._reading() as conn:
            return _committed(queries.committed_by(conn, night))

    def history(self, keys: pl.DataFrame, night: str) -> History:
        """What a run plans against: the settled clips of `keys` (campaign, item_id), every open
        reservation with provider jobs, `night`'s committed money and the measured prices (the newest
        clips of each price key); bounded by what is asked about, not by the ledger's history."""
        with self._reading(snapshot=True) as conn:
            return History(
                settled=queries.settled_for(conn, keys),
                in_flight=queries.in_flight(conn),
                committed=_committed(queries.committed_by(conn, night)),
                measured=measured_prices(queries.measurements(conn, RECENT, since_night(night))),
            )

    def measured(self, night: str | None = None) -> dict:
        """route -> price key -> what its newest settled clips measured (vidbatch.measured), as a
        run on `night` (default: today, UTC) sees it."""
        night = night or _now().date().isoformat()
        with self._reading() as conn:
            return measured_prices(queries.measurements(conn, RECENT, since_night(night)))

    def settled_for(self, keys: pl.DataFrame) -> pl.DataFrame:
        """The latest settled clip that passed QA for each of `keys` that has one (SETTLED_SCHEMA)."""
        with self._reading(snapshot=True) as conn:
            return queries.settled_for(conn, keys)

    def spend(self, keys: list[str], *, run_id: str | None = None, nights: list[str] | None = None) -> pl.DataFrame:
        """Estimated vs actual money grouped by `keys` (SPEND_COLUMNS), for one run, some nights, or all."""
        with self._reading() as conn:
            return queries.spend(conn, keys, run_id=run_id, nights=nights)

    def nights(self, newest: int | None = None) -> list[str]:
        """The nights that have rows (the `newest` ones, or all), newest first."""
        with self._reading() as conn:
            return list(
                conn.scalars(
                    select(ledger_rows.c.night)
                    .where(ledger_rows.c.night.is_not(None))
                    .group_by(ledger_rows.c.night)
                    .order_by(ledger_rows.c.night.desc())
                    .limit(newest)
                )
            )

    def stitches(self, campaigns: list[str] | None = None) -> pl.DataFrame:
        """Storyboards stitched so far (of `campaigns`, or all), oldest first (STITCH_SCHEMA)."""
        where = stitches.c.campaign.in_(campaigns) if campaigns is not None else true()
        with self._reading() as conn:
            rows = (
                conn.execute(select(*(stitches.c[name] for name in STITCH_SCHEMA)).where(where).order_by(stitches.c.id))
                .mappings()
                .all()
            )
        return pl.DataFrame([{**r, "created_at": queries.aware(r["created_at"])} for r in rows], schema=STITCH_SCHEMA)

    def frame(self, *, run_id: str | None = None, night: str | None = None) -> pl.DataFrame:
        """Ledger rows (all, or one run's, or one night's) in write order, with LEDGER_SCHEMA."""
        with self._reading() as conn:
            return queries.rows(conn, run_id=run_id, night=night)


def _committed(spent: dict[tuple[str, str], int]) -> Committed:
    by_campaign: dict[str, int] = defaultdict(int)
    for (campaign, _), amount in spent.items():
        by_campaign[campaign] += amount
    return Committed(night=sum(spent.values()), by_campaign=dict(by_campaign))


def _alive(run) -> bool:
    """A run is alive while it has not ended, beats its heartbeat, and (on this host) its process exists."""
    if run["ended_at"] is not None or queries.aware(run["heartbeat_at"]) < _now() - timedelta(seconds=DEAD_AFTER_S):
        return False
    if run["host"] == socket.gethostname() and run["pid"]:
        try:
            os.kill(run["pid"], 0)
        except ProcessLookupError:
            return False  # killed without a word: no need to wait for its heartbeat to go stale
        except PermissionError:
            pass  # someone else's process: alive
    return True
