"""The ledger store's row writes, inside a transaction the store opened: appending rows while
keeping `open_reservations` and `night_spend` in step, closing open reservations at their estimate, and the row
identity that keeps an import from adding a row twice."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from vidbatch.ledger import CLOSING, SPENT, Reservation
from vidbatch.ledger_store import queries
from vidbatch.ledger_store.schema import ledger_rows, night_spend, open_reservations, read_back, stored

# The rows that set what an open reservation holds: `reserved`, then each `raised` (which only grows it).
HOLDING = ("reserved", "raised")

__all__ = [
    "HOLDING",
    "insert_rows",
    "bulk_insert",
    "touched_by",
    "reopen",
    "reopen_after",
    "respend_after",
    "row_key",
    "row_keys",
    "open_rows",
    "charge_estimates",
]


def insert_rows(conn: Connection, rows: list[dict]) -> None:
    """Append rows and keep open_reservations in step with them, in the caller's transaction."""
    if not rows:
        return
    kept = [stored(r) for r in rows]
    conn.execute(insert(ledger_rows), kept)
    reopen(conn, touched_by(rows))
    _add_spend(conn, kept)


def _add_spend(conn: Connection, rows: list[dict]) -> None:
    """Add the spent rows' money (stored rows: micro-dollars) to night_spend (one upsert per night,
    campaign and run)."""
    added: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        if r["status"] in SPENT and r["cost_micros"]:
            added[(r["night"], r.get("campaign") or "", r.get("run_id") or "")] += r["cost_micros"]
    if not added:
        return
    upsert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(night_spend)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["night", "campaign", "run_id"],
            set_={"micros": night_spend.c.micros + upsert.excluded.micros},
        ),
        [{"night": n, "campaign": c, "run_id": r, "micros": amount} for (n, c, r), amount in added.items()],
    )


def respend_after(conn: Connection, last_id: int) -> None:
    """Rebuild night_spend for every night with a row after `last_id` (a bulk import's), from its rows."""
    nights = select(ledger_rows.c.night).where(ledger_rows.c.id > last_id).distinct()
    conn.execute(delete(night_spend).where(night_spend.c.night.in_(nights)))
    campaign, run_id = func.coalesce(ledger_rows.c.campaign, ""), func.coalesce(ledger_rows.c.run_id, "")
    conn.execute(
        insert(night_spend).from_select(
            ["night", "campaign", "run_id", "micros"],
            select(ledger_rows.c.night, campaign, run_id, func.sum(ledger_rows.c.cost_micros))
            .where(ledger_rows.c.night.in_(nights), ledger_rows.c.status.in_(SPENT))
            .group_by(ledger_rows.c.night, campaign, run_id),
        )
    )


def bulk_insert(conn: Connection, rows: list[dict], postgres: bool) -> None:
    """Many stored rows (`schema.stored`) at once, without open_reservations (the caller rebuilds it
    with `reopen`): on PostgreSQL through COPY (one statement per row otherwise: 70 us a row), else
    executemany."""
    if not rows:
        return
    if not postgres:
        conn.execute(insert(ledger_rows), rows)
        return
    names = [c.name for c in ledger_rows.c if c.name != "id"]
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection
    with driver.cursor() as cursor:
        with cursor.copy(f"COPY ledger_rows ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(name) for name in names])


def reopen_after(conn: Connection, last_id: int) -> None:
    """Rebuild the open_reservations rows of every reservation that has a row after `last_id` (a bulk
    import's), in one statement each way: the database joins once over the new rows, where chunks
    of ids looked up one by one read the table again for every chunk on PostgreSQL."""
    new = select(ledger_rows.c.reservation_id).where(
        ledger_rows.c.id > last_id, ledger_rows.c.reservation_id.is_not(None)
    )
    _rebuild(conn, new)


def touched_by(rows: list[dict]) -> set[str]:
    """The reservations whose openness or holding these rows may change."""
    return {
        r["reservation_id"]
        for r in rows
        if r.get("reservation_id") and (r["status"] in HOLDING or r["status"] in CLOSING)
    }


def reopen(conn: Connection, reservation_ids: set[str]) -> None:
    """Rebuild the open_reservations rows of these reservations from their ledger rows, 500 at a time.
    Every part is found through the reservation index from the chunk's ids, so a statement costs
    the chunk's, whatever the ledger's size (before, SQLite read every `reserved` row of the
    ledger for each: every append grew with history, and an import with the square of its rows)."""
    touched = sorted(reservation_ids)
    for start in range(0, len(touched), 500):
        _rebuild(conn, touched[start : start + 500])


def _rebuild(conn: Connection, reservations) -> None:
    """open_reservations for `reservations` (ids, or a select of them): deleted, then inserted from
    their first `reserved` row while no closing row exists, holding the latest estimate."""
    conn.execute(delete(open_reservations).where(open_reservations.c.reservation_id.in_(reservations)))
    reserved = ledger_rows.alias("reserved")  # its first `reserved` row (a retried reserve may add another)
    first = (
        select(func.min(reserved.c.id))
        .where(reserved.c.reservation_id == ledger_rows.c.reservation_id, reserved.c.status == "reserved")
        .scalar_subquery()
    )
    held = ledger_rows.alias("held")  # what it holds: the reserved row's estimate, or the latest raise
    holds = (
        select(func.max(held.c.est_cost_micros))
        .where(held.c.reservation_id == ledger_rows.c.reservation_id, held.c.status.in_(HOLDING))
        .scalar_subquery()
    )
    conn.execute(
        insert(open_reservations).from_select(
            ["reservation_id", "row_id", "night", "campaign", "item_id", "fingerprint", "run_id", "est_cost_micros"],
            select(
                ledger_rows.c.reservation_id,
                ledger_rows.c.id,
                ledger_rows.c.night,
                ledger_rows.c.campaign,
                ledger_rows.c.item_id,
                ledger_rows.c.fingerprint,
                ledger_rows.c.run_id,
                holds,
            ).where(
                ledger_rows.c.reservation_id.in_(reservations),
                ledger_rows.c.id == first,  # no `status =`: the
                queries.still_open(),
            ),
        )
    )  # planner would take the status index and read every reserved row


_KEY = ("run_id", "item_id", "status", "reservation_id", "job_id", "created_at")


def row_key(row: dict) -> tuple:
    return tuple(queries.aware(row[k]) if k == "created_at" else row[k] for k in _KEY)


def row_keys(conn: Connection, run_ids: list[str]) -> set[tuple]:
    """The identities of the rows these runs already have in the ledger."""
    keys: set[tuple] = set()
    for start in range(0, len(run_ids), 500):
        query = select(*(ledger_rows.c[k] for k in _KEY)).where(ledger_rows.c.run_id.in_(run_ids[start : start + 500]))
        keys |= {row_key(r._asdict()) for r in conn.execute(query)}
    return keys


def open_rows(conn: Connection, where) -> list[dict]:
    """The `reserved` rows of the open reservations matching `where` (a clause on open_reservations),
    each with the estimate it holds now (raised, if its call outgrew the first), as ledger rows (USD)."""
    columns = [c for c in ledger_rows.c if c.name != "est_cost_micros"]
    return [
        read_back(dict(r))
        for r in conn.execute(
            select(*columns, open_reservations.c.est_cost_micros)
            .join(open_reservations, open_reservations.c.row_id == ledger_rows.c.id)
            .where(where)
        ).mappings()
    ]


def charge_estimates(conn: Connection, reserved: list[dict], run_id: str, reason: str) -> None:
    """Close open reservations as failed at their estimate (at 0 when already paid: the paid row
    holds the money), each under its own night."""
    if reserved:
        insert_rows(
            conn,
            [
                Reservation.of_row(held).closed(
                    "failed",
                    0.0 if queries.is_paid(conn, held["reservation_id"]) else held["est_cost_usd"],
                    reason,
                    run_id=run_id,
                )
                for held in reserved
            ],
        )
