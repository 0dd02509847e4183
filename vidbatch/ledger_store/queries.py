"""What the ledger says, as SQL over one connection: the store's read side.

Every query here is bounded by what it asks about, not by history: tonight's rows (index on
night, status), one run's rows (index on run_id), the catalog's items (a temporary table joined
on the index on campaign, item_id), and the open reservations (their own small table, kept by
the store in the same transactions as the rows).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

import polars as pl
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Connection

from vidbatch.ledger import CLOSING, IN_FLIGHT_SCHEMA, LEDGER_SCHEMA, SETTLED_SCHEMA, SPEND_COLUMNS, SPENT
from vidbatch.ledger_store.schema import MONEY_COLUMNS, ledger_rows, night_spend, open_reservations, read_back
from vidbatch.micros import usd_of
from vidbatch.measured import MEASUREMENT_SCHEMA

__all__ = [
    "measurements",
    "committed_by",
    "settled_for",
    "awaiting_review",
    "in_flight",
    "spend",
    "rows",
    "still_open",
    "aware",
    "is_paid",
]

_WANTED = Table("wanted_items", MetaData(), Column("campaign", Text), Column("item_id", Text))
_CREATE_WANTED = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS wanted_items "
    "(campaign TEXT NOT NULL, item_id TEXT NOT NULL, PRIMARY KEY (campaign, item_id))"
)
# `wanted CROSS JOIN ledger_rows` keeps SQLite's planner on the item index (wanted rows outside,
# ledger_rows looked up); PostgreSQL reads it as an inner join and plans it itself.
_SETTLED = """
SELECT l.campaign, l.item_id, l.fingerprint, l.run_id, l.asset_uri,
       l.cost_micros + COALESCE((SELECT SUM(p.cost_micros) FROM ledger_rows p
                                 WHERE p.reservation_id = l.reservation_id AND p.status = 'paid'), 0) AS cost_micros,
       l.created_at, l.job_id, l.reservation_id, l.route, l.model,
       CASE WHEN EXISTS (SELECT 1 FROM ledger_rows d
                         WHERE d.reservation_id = l.reservation_id AND d.status = 'delivered')
              OR NOT EXISTS (SELECT 1 FROM ledger_rows p
                             WHERE p.reservation_id = l.reservation_id AND p.status = 'paid')
            THEN 1 ELSE 0 END AS delivered,
       CASE WHEN EXISTS (SELECT 1 FROM ledger_rows v
                         WHERE v.reservation_id = l.reservation_id AND v.status = 'approved')
              THEN 'approved'
            WHEN EXISTS (SELECT 1 FROM ledger_rows v WHERE v.reservation_id = l.reservation_id
                         AND v.status = 'review_rejected') THEN 'rejected'
            WHEN EXISTS (SELECT 1 FROM ledger_rows v WHERE v.reservation_id = l.reservation_id
                         AND v.status = 'awaiting_review') THEN 'pending'
       END AS review,
       (SELECT COUNT(*) FROM ledger_rows r WHERE r.campaign = l.campaign AND r.item_id = l.item_id
          AND r.fingerprint = l.fingerprint AND r.status = 'review_rejected') AS rejections,
       (SELECT r.prompt FROM ledger_rows r WHERE r.campaign = l.campaign AND r.item_id = l.item_id
          AND r.fingerprint = l.fingerprint AND r.status = 'review_rejected' AND r.prompt IS NOT NULL
          ORDER BY r.id DESC LIMIT 1) AS edited_prompt
FROM wanted_items w CROSS JOIN ledger_rows l
WHERE l.campaign = w.campaign AND l.item_id = w.item_id AND l.status = 'settled'
  AND NOT EXISTS (SELECT 1 FROM ledger_rows q WHERE q.reservation_id = l.reservation_id AND q.status = 'qa_failed')
ORDER BY l.id
"""


def still_open():
    """Where-clause for `reserved` rows that no settled/failed/released row has closed."""
    closer = ledger_rows.alias("closer")
    return ~exists().where(closer.c.reservation_id == ledger_rows.c.reservation_id, closer.c.status.in_(CLOSING))


def _paid(reservation_id):
    """Where-clause: the reservation has a `paid` row (its money is spent, not estimated)."""
    paid = ledger_rows.alias("paid")
    return exists().where(paid.c.reservation_id == reservation_id, paid.c.status == "paid")


def is_paid(conn: Connection, reservation_id: str) -> bool:
    return (
        conn.execute(
            select(ledger_rows.c.id)
            .where(ledger_rows.c.reservation_id == reservation_id, ledger_rows.c.status == "paid")
            .limit(1)
        ).first()
        is not None
    )


def committed_by(conn: Connection, night: str) -> dict[tuple[str, str], int]:
    """(campaign, run_id) -> micro-dollars committed on `night`: spent (night_spend, kept with the
    rows) plus the estimates still open (an open reservation that is already paid counts its cost,
    among the spent money)."""
    spent = select(night_spend.c.campaign, night_spend.c.run_id, night_spend.c.micros).where(
        night_spend.c.night == night
    )
    held = select(
        open_reservations.c.campaign, open_reservations.c.run_id, open_reservations.c.est_cost_micros.label("micros")
    ).where(open_reservations.c.night == night, ~_paid(open_reservations.c.reservation_id))
    both = union_all(spent, held).subquery()
    # One statement, so one snapshot on PostgreSQL: a settlement committed between two queries could
    # otherwise be missed by both (not yet spent in the first, no longer held in the second).
    out: dict[tuple[str, str], int] = defaultdict(int)
    for campaign, run_id, amount in conn.execute(
        select(both.c.campaign, both.c.run_id, func.sum(both.c.micros)).group_by(both.c.campaign, both.c.run_id)
    ):
        out[(campaign, run_id)] += int(amount or 0)  # PostgreSQL sums BIGINT as NUMERIC: a Decimal
    return out


def measurements(conn: Connection, recent: int, since_night: str) -> pl.DataFrame:
    """The newest `recent` measured prices of each (route, price key) among the settled clips of
    nights from `since_night` on that recorded one (MEASUREMENT_SCHEMA): bounded by those nights,
    not by history (the index on night)."""
    ranked = (
        select(
            ledger_rows.c.route,
            ledger_rows.c.price_key,
            ledger_rows.c.gpu_s_per_shot,
            func.row_number()
            .over(partition_by=(ledger_rows.c.route, ledger_rows.c.price_key), order_by=ledger_rows.c.id.desc())
            .label("newest"),
        )
        .where(
            ledger_rows.c.night >= since_night,
            ledger_rows.c.status == "settled",
            ledger_rows.c.price_key.is_not(None),
            ledger_rows.c.gpu_s_per_shot.is_not(None),
        )
        .subquery()
    )
    found = conn.execute(
        select(ranked.c.route, ranked.c.price_key, ranked.c.gpu_s_per_shot).where(ranked.c.newest <= recent)
    ).all()
    return pl.DataFrame([r._asdict() for r in found], schema=MEASUREMENT_SCHEMA)


def settled_for(conn: Connection, keys: pl.DataFrame) -> pl.DataFrame:
    """The latest settled clip that passed QA for each (campaign, item_id) of `keys` that has one
    (SETTLED_SCHEMA). Reads only those items' rows, however long the history."""
    wanted = keys.select("campaign", "item_id").drop_nulls().unique()
    if wanted.is_empty():
        return pl.DataFrame(schema=SETTLED_SCHEMA)
    conn.execute(text(_CREATE_WANTED))
    conn.execute(_WANTED.delete())
    conn.execute(insert(_WANTED), wanted.to_dicts())
    found = [
        read_back(dict(r._mapping)) for r in conn.execute(text(_SETTLED).columns(created_at=DateTime(timezone=True)))
    ]
    conn.execute(_WANTED.delete())
    for row in found:
        row["created_at"], row["delivered"] = aware(row["created_at"]), bool(row["delivered"])
    return (
        pl.DataFrame(found, schema=SETTLED_SCHEMA)
        .sort("created_at", maintain_order=True)
        .group_by("campaign", "item_id", maintain_order=True)
        .last()
    )


def awaiting_review(
    conn: Connection, *, campaign: str | None = None, item_ids: list[str] | None = None
) -> pl.DataFrame:
    """The clips awaiting a person's verdict (their `awaiting_review` rows, LEDGER_SCHEMA plus
    `cost_usd` as paid), oldest first; found on the status index, whatever the history."""
    pending, verdict = ledger_rows.alias("pending"), ledger_rows.alias("verdict")
    paid = ledger_rows.alias("paid")
    cost = (
        select(func.coalesce(func.sum(paid.c.cost_micros), 0))
        .where(paid.c.reservation_id == pending.c.reservation_id, paid.c.status.in_(SPENT))
        .scalar_subquery()
    )
    query = (
        select(*_columns(pending, but="cost_usd"), cost.label("cost_micros"))
        .where(
            pending.c.status == "awaiting_review",
            ~exists().where(
                verdict.c.reservation_id == pending.c.reservation_id,
                verdict.c.status.in_(("approved", "review_rejected")),
            ),
        )
        .order_by(pending.c.id)
    )
    if campaign is not None:
        query = query.where(pending.c.campaign == campaign)
    if item_ids is not None:
        query = query.where(pending.c.item_id.in_(item_ids))
    found = [read_back(r._asdict()) for r in conn.execute(query)]
    for row in found:
        row["created_at"] = aware(row["created_at"])
    return pl.DataFrame(found, schema=LEDGER_SCHEMA).select(list(LEDGER_SCHEMA))


def in_flight(conn: Connection) -> pl.DataFrame:
    """Open reservations that have provider jobs (IN_FLIGHT_SCHEMA), job ids in submit order.

    Two indexed queries, the open ones first (few, whatever the history), then their jobs: one
    join would let SQLite's planner (no statistics) start from every `submitted` row ever written."""
    reserved = ledger_rows.alias("reserved")
    held = [
        r._asdict()
        for r in conn.execute(
            select(
                open_reservations.c.reservation_id,
                open_reservations.c.campaign,
                open_reservations.c.item_id,
                open_reservations.c.fingerprint,
                reserved.c.route,
                reserved.c.model,
                open_reservations.c.est_cost_micros,
                open_reservations.c.run_id,
            )
            .join(reserved, reserved.c.id == open_reservations.c.row_id)
            .order_by(open_reservations.c.row_id)
        )
    ]
    jobs: dict[str, list[str]] = defaultdict(list)
    paid: dict[str, int] = {}
    ids = [r["reservation_id"] for r in held]
    for start in range(0, len(ids), 500):
        for reservation_id, job_id, status, cost in conn.execute(
            select(ledger_rows.c.reservation_id, ledger_rows.c.job_id, ledger_rows.c.status, ledger_rows.c.cost_micros)
            .where(
                ledger_rows.c.reservation_id.in_(ids[start : start + 500]),
                ledger_rows.c.status.in_(("submitted", "paid")),
            )
            .order_by(ledger_rows.c.id)
        ):
            if status == "paid":
                paid[reservation_id] = paid.get(reservation_id, 0) + cost
            else:
                jobs[reservation_id].append(job_id)
    return pl.DataFrame(
        [
            {
                **read_back(r),
                "job_ids": jobs[r["reservation_id"]],
                "paid_usd": usd_of(paid[r["reservation_id"]]) if r["reservation_id"] in paid else None,
            }
            for r in held
            if jobs[r["reservation_id"]]
        ],
        schema=IN_FLIGHT_SCHEMA,
    )


def spend(
    conn: Connection, keys: list[str], *, run_id: str | None = None, nights: list[str] | None = None
) -> pl.DataFrame:
    """Estimated vs actual money grouped by `keys` (ledger columns; none: one row of totals).

    clips: settled rows; failed_calls; deferred; est_usd: the estimates of calls made (reserved
    rows); actual_usd: what settled and failed calls cost. Rows without a route carry no money."""
    status, columns = ledger_rows.c.status, [ledger_rows.c[k] for k in keys]
    query = select(
        *columns,
        func.sum(case((status == "settled", 1), else_=0)).label("clips"),
        func.sum(case((status == "failed", 1), else_=0)).label("failed_calls"),
        func.sum(case((status == "deferred", 1), else_=0)).label("deferred"),
        func.sum(case((status == "reserved", ledger_rows.c.est_cost_micros), else_=literal(0))).label("est_usd"),
        func.sum(case((status.in_(SPENT), ledger_rows.c.cost_micros), else_=literal(0))).label("actual_usd"),
    ).where(ledger_rows.c.route.is_not(None))
    if run_id is not None:
        query = query.where(ledger_rows.c.run_id == run_id)
    if nights is not None:
        query = query.where(ledger_rows.c.night.in_(nights))
    if keys:
        query = query.group_by(*columns).order_by(*columns)
    schema = {**{k: LEDGER_SCHEMA[k] for k in keys}, **SPEND_COLUMNS}
    found = [
        {**r._asdict(), "est_usd": usd_of(int(r.est_usd or 0)), "actual_usd": usd_of(int(r.actual_usd or 0))}
        for r in conn.execute(query)
    ]  # summed in micro-dollars, exactly
    if not keys and found and found[0]["clips"] is None:  # no rows at all: zero totals
        found = [{name: 0 for name in SPEND_COLUMNS}]
    return pl.DataFrame(found, schema=schema, orient="row")


def rows(conn: Connection, *, run_id: str | None = None, night: str | None = None) -> pl.DataFrame:
    """Ledger rows (all, or one run's, or one night's) in write order, with LEDGER_SCHEMA."""
    query = select(*_columns(ledger_rows)).order_by(ledger_rows.c.id)
    if run_id is not None:
        query = query.where(ledger_rows.c.run_id == run_id)
    if night is not None:
        query = query.where(ledger_rows.c.night == night)
    found = [read_back(r._asdict()) for r in conn.execute(query)]
    for row in found:
        row["created_at"] = aware(row["created_at"])
    return pl.DataFrame(found, schema=LEDGER_SCHEMA)


def _columns(table, but: str | None = None) -> list:
    """`table`'s columns that hold the ledger's fields (money as micro-dollars; `but` left out)."""
    return [table.c[MONEY_COLUMNS.get(name, name)] for name in LEDGER_SCHEMA if name != but]


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC, PostgreSQL aware: one kind for polars."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
