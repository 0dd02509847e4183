"""Measured prices: what a settled clip measured of its route's price (Wan: GPU seconds per full
shot, keyed by model, resolution and profile), and an index that finds the latest measurements.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_rows") as batch:
        batch.add_column(sa.Column("price_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("gpu_s_per_shot", sa.Float, nullable=True))
    # A run reads the newest measurements of each price key: found on the index, whatever the history.
    op.create_index("ledger_rows_price_key", "ledger_rows", ["provider", "price_key", "id"])


def downgrade() -> None:
    op.drop_index("ledger_rows_price_key", "ledger_rows")
    with op.batch_alter_table("ledger_rows") as batch:
        batch.drop_column("gpu_s_per_shot")
        batch.drop_column("price_key")
