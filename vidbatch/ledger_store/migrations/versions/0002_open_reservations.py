"""open_reservations: the reservations still open, kept beside the rows so reads skip history.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BACKFILL = """
INSERT INTO open_reservations (reservation_id, row_id, night, campaign, item_id, fingerprint, run_id, est_cost_usd)
SELECT r.reservation_id, r.id, r.night, r.campaign, r.item_id, r.fingerprint, r.run_id, r.est_cost_usd
FROM ledger_rows r
WHERE r.status = 'reserved' AND r.reservation_id IS NOT NULL
  AND r.id = (SELECT min(f.id) FROM ledger_rows f WHERE f.reservation_id = r.reservation_id AND f.status = 'reserved')
  AND NOT EXISTS (SELECT 1 FROM ledger_rows c WHERE c.reservation_id = r.reservation_id
                  AND c.status IN ('settled', 'failed', 'released'))
"""


def upgrade() -> None:
    op.create_table(
        "open_reservations",
        sa.Column("reservation_id", sa.String(64), primary_key=True),
        sa.Column("row_id", sa.Integer, nullable=False),
        sa.Column("night", sa.String(10), nullable=False),
        sa.Column("campaign", sa.Text),
        sa.Column("item_id", sa.Text),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("est_cost_usd", sa.Float, nullable=False),
    )
    op.create_index("open_reservations_night", "open_reservations", ["night"])
    op.create_index("open_reservations_item", "open_reservations", ["campaign", "item_id"])
    op.create_index("open_reservations_run", "open_reservations", ["run_id"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("open_reservations")
