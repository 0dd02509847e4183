"""Money in whole micro-dollars: `ledger_rows.est_cost_usd` / `cost_usd` (Float) become
`est_cost_micros` / `cost_micros` (BigInteger), likewise `open_reservations.est_cost_usd`, and
`night_spend.usd` becomes `micros`, refilled from the converted rows so it equals their exact sum.

Each amount is rounded to the nearest micro-dollar, half away from zero: the same IEEE operations
as `vidbatch.micros.micros`, so a row converted here holds what vidbatch would have written.
In place on both databases: PostgreSQL rewrites the table once (`ALTER COLUMN ... TYPE ... USING`,
both columns in one statement); SQLite adds the integer columns, fills them in one UPDATE and drops
the float ones (3.35 or later). bench/ledger_migration.py measures it on a 1 M-row ledger.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SPENT = ("paid", "settled", "failed")  # vidbatch.ledger.SPENT as of this revision
MONEY = {"est_cost_usd": "est_cost_micros", "cost_usd": "cost_micros"}


def _micros(column: str, postgres: bool) -> str:
    """SQL for `column` (USD, double) in whole micro-dollars, half away from zero."""
    if postgres:
        return f"(sign({column}) * floor(abs({column}) * 1000000 + 0.5))::bigint"
    # SQLite's CAST of a REAL truncates toward zero: of a non-negative value, its floor
    return f"(CASE WHEN {column} < 0 THEN -1 ELSE 1 END) * CAST(abs({column}) * 1000000 + 0.5 AS INTEGER)"


def _convert(table: str, money: dict[str, str], postgres: bool) -> None:
    """`table`'s USD columns (money: old name -> new name) to BigInteger micro-dollars, in place."""
    if postgres:
        op.execute(
            f"ALTER TABLE {table} "
            + ", ".join(f"ALTER COLUMN {old} TYPE BIGINT USING {_micros(old, True)}" for old in money)
        )
        for old, new in money.items():
            op.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
        return
    for new in money.values():
        op.execute(f"ALTER TABLE {table} ADD COLUMN {new} BIGINT NOT NULL DEFAULT 0")
    op.execute(f"UPDATE {table} SET " + ", ".join(f"{new} = {_micros(old, False)}" for old, new in money.items()))
    for old in money:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {old}")


def _refill_spend(amount: str, kind: sa.types.TypeEngine) -> None:
    """night_spend made again (a few rows a night) with `amount` of `kind`, from the converted rows."""
    op.drop_table("night_spend")
    op.create_table(
        "night_spend",
        sa.Column("night", sa.String(10), primary_key=True),
        sa.Column("campaign", sa.String(256), primary_key=True),
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column(amount.split("_")[-1], kind, nullable=False),
    )
    spent = ", ".join(f"'{status}'" for status in SPENT)
    op.execute(f"""INSERT INTO night_spend
                   SELECT night, COALESCE(campaign, ''), COALESCE(run_id, ''), SUM({amount})
                   FROM ledger_rows WHERE status IN ({spent})
                   GROUP BY night, COALESCE(campaign, ''), COALESCE(run_id, '')""")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _convert("ledger_rows", MONEY, postgres)
    _convert("open_reservations", {"est_cost_usd": "est_cost_micros"}, postgres)
    _refill_spend("cost_micros", sa.BigInteger())  # the exact sums of the converted rows


def _back(table: str, money: dict[str, str], postgres: bool) -> None:
    for old in money:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {old} {'DOUBLE PRECISION' if postgres else 'FLOAT'} NOT NULL DEFAULT 0"
        )
    op.execute(f"UPDATE {table} SET " + ", ".join(f"{old} = {new} / 1000000.0" for old, new in money.items()))
    for new in money.values():
        op.execute(f"ALTER TABLE {table} DROP COLUMN {new}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _back("ledger_rows", MONEY, postgres)
    _back("open_reservations", {"est_cost_usd": "est_cost_micros"}, postgres)
    _refill_spend("cost_usd", sa.Float())
