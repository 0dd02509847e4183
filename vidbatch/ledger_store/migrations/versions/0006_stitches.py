"""Stitched storyboards are recorded in the ledger database (they were append-only Parquet parts
under the output root's `storyboards/`): one store holds what a run remembers, and no run lists
the storage to learn what it stitched before. The old parts are imported once per root
(vidbatch.ledger_store.open_ledger) and left in place.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stitches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64)),
        sa.Column("campaign", sa.Text, nullable=False),
        sa.Column("storyboard_id", sa.Text, nullable=False),
        sa.Column("stitch_fingerprint", sa.String(64), nullable=False),
        sa.Column("asset_uri", sa.Text),
        sa.Column("seconds", sa.Float),
        sa.Column("scenes", sa.Integer),
        sa.Column("mode", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("stitches_board", "stitches", ["campaign", "storyboard_id"])


def downgrade() -> None:
    op.drop_index("stitches_board", "stitches")
    op.drop_table("stitches")
