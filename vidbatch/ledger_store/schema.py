"""The ledger's tables (SQLAlchemy Core). Changes go through an Alembic migration in `migrations/`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text

from vidbatch.micros import micros, usd_of

__all__ = [
    "MONEY_COLUMNS",
    "stored",
    "read_back",
    "metadata",
    "ledger_rows",
    "open_reservations",
    "runs",
    "imports",
    "stitches",
    "route_slots",
    "route_submits",
    "night_spend",
]

metadata = MetaData()

# Money is kept in whole micro-dollars (vidbatch.micros; revision 0009): a ledger row's USD amount
# (what vidbatch.ledger builds and reads) -> the integer column that holds it.
MONEY_COLUMNS = {"est_cost_usd": "est_cost_micros", "cost_usd": "cost_micros"}

# One row per ledger event, never updated or deleted (see vidbatch.ledger for what they mean).
ledger_rows = Table(
    "ledger_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64)),
    Column("night", String(10)),
    Column("item_id", Text),
    Column("campaign", Text),
    Column("fingerprint", String(64)),
    Column("route", String(64)),
    Column("model", Text),
    Column("status", String(16), nullable=False),
    Column("est_cost_micros", BigInteger, nullable=False, default=0),  # revision 0009: was est_cost_usd, Float
    Column("cost_micros", BigInteger, nullable=False, default=0),  # revision 0009: was cost_usd, Float
    Column("seconds", Float),
    Column("asset_uri", Text),
    Column("sha256", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text),
    Column("reservation_id", String(64)),
    Column("job_id", Text),
    Column("attempt", Integer),
    Column("sandbox", Boolean, nullable=False, default=False),
    Column("prompt", Text),  # revision 0003
    Column("reviewer", Text),  # revision 0003
    Column("price_key", Text),  # revision 0004: settled clips that measured their price
    Column("gpu_s_per_shot", Float),  # revision 0004
    Column("adherence", Float),  # revision 0010: the finished clip's scores ([qa.scores])
    Column("coherence", Float),
    Column("drift", Float),
    Column("motion", Float),
    Column("jitter", Float),
    Column("score_model", Text),
)

# The reservations no settled/failed/released row has closed yet: an index the store keeps in the
# same transaction as the rows it derives from, so what is open (the money held, the jobs to resume)
# is found without scanning history. It can always be rebuilt from ledger_rows (migration 0002).
open_reservations = Table(
    "open_reservations",
    metadata,
    Column("reservation_id", String(64), primary_key=True),
    Column("row_id", Integer, nullable=False),  # the `reserved` row in ledger_rows
    Column("night", String(10), nullable=False),
    Column("campaign", Text),
    Column("item_id", Text),
    Column("fingerprint", String(64)),
    Column("run_id", String(64)),
    Column("est_cost_micros", BigInteger, nullable=False),  # revision 0009
)

# Runs that write to this ledger, with a heartbeat: a reservation held by a live run is never
# duplicated; one held by a run that stopped beating is taken over.
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("host", Text),
    Column("pid", Integer),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)

# Parquet ledgers imported into this one (an output root's old `ledger/part-*.parquet`, or
# `vidbatch ledger import PATH`), so each is imported once.
imports = Table(
    "imports",
    metadata,
    Column("source", Text, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

# Storyboards stitched so far (revision 0006; before it, Parquet parts under the root's `storyboards/`).
stitches = Table(
    "stitches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64)),
    Column("campaign", Text, nullable=False),
    Column("storyboard_id", Text, nullable=False),
    Column("stitch_fingerprint", String(64), nullable=False),
    Column("asset_uri", Text),
    Column("seconds", Float),
    Column("scenes", Integer),
    Column("mode", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A route's limits across every run that shares this ledger (revision 0007; vidbatch.ledger_store.limits).
route_slots = Table(
    "route_slots",
    metadata,
    Column("limit_name", String(128), primary_key=True),
    Column("holder", String(128), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
)
route_submits = Table(
    "route_submits",
    metadata,
    Column("limit_name", String(128), primary_key=True),
    Column("level", Float, nullable=False),
    Column("at", Float, nullable=False),
)

# Money spent per night, campaign and run: the sum of the SPENT rows' cost_micros (revision 0008), kept
# by the store in the same transaction as those rows, so a reservation's cap check reads a few rows
# per run, not every row of its night (that read grew with the night: 18 ms at 10,000 clips, inside
# the write lock that every reservation takes). It can always be rebuilt from ledger_rows. A row
# without a campaign or run (none are written so) is kept under "".
night_spend = Table(
    "night_spend",
    metadata,
    Column("night", String(10), primary_key=True),
    Column("campaign", String(256), primary_key=True),
    Column("run_id", String(64), primary_key=True),
    Column("micros", BigInteger, nullable=False),  # revision 0009: was usd, Float
)


def stored(row: dict) -> dict:
    """A ledger row (vidbatch.ledger: amounts in USD) as `ledger_rows` holds it (micro-dollars)."""
    out = {name: value for name, value in row.items() if name not in MONEY_COLUMNS}
    for usd_name, micros_name in MONEY_COLUMNS.items():
        out[micros_name] = micros(row.get(usd_name) or 0.0)
    return out


def read_back(row: dict) -> dict:
    """A `ledger_rows` row (micro-dollars) as a ledger row (USD): the inverse of `stored`."""
    out = {name: value for name, value in row.items() if name not in MONEY_COLUMNS.values()}
    for usd_name, micros_name in MONEY_COLUMNS.items():
        if micros_name in row:
            out[usd_name] = usd_of(int(row[micros_name] or 0))
    return out
