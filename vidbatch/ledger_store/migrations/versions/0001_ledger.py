"""The ledger as a database: ledger_rows, runs, imports.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_rows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64)),
        sa.Column("night", sa.String(10)),
        sa.Column("item_id", sa.Text),
        sa.Column("campaign", sa.Text),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("provider", sa.String(64)),
        sa.Column("model", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("est_cost_usd", sa.Float, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("seconds", sa.Float),
        sa.Column("asset_uri", sa.Text),
        sa.Column("sha256", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("reservation_id", sa.String(64)),
        sa.Column("job_id", sa.Text),
        sa.Column("attempt", sa.Integer),
        sa.Column("sandbox", sa.Boolean, nullable=False),
    )
    op.create_index("ledger_rows_night_status", "ledger_rows", ["night", "status"])
    op.create_index("ledger_rows_reservation", "ledger_rows", ["reservation_id"])
    op.create_index("ledger_rows_item", "ledger_rows", ["campaign", "item_id"])
    op.create_index("ledger_rows_run", "ledger_rows", ["run_id"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "imports",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("imports")
    op.drop_table("runs")
    op.drop_table("ledger_rows")
