"""Review: the edited prompt and the reviewer of a verdict, and an index that finds clips awaiting review.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_rows") as batch:
        batch.add_column(sa.Column("prompt", sa.Text, nullable=True))
        batch.add_column(sa.Column("reviewer", sa.Text, nullable=True))
    # Review rows are few among millions: found by status without scanning history.
    op.create_index("ledger_rows_status_item", "ledger_rows", ["status", "campaign", "item_id"])


def downgrade() -> None:
    op.drop_index("ledger_rows_status_item", "ledger_rows")
    with op.batch_alter_table("ledger_rows") as batch:
        batch.drop_column("reviewer")
        batch.drop_column("prompt")
