"""A route's limits across every run on the account, held in the ledger database (they were
Prefect global concurrency limits, whose server answered each slot or submit in 2-17 s under a
busy night: a route with 4 s jobs ran at a third of what was bought).

`route_slots`: one row per slot of a route's jobs limit a run holds (a lane). A slot whose run
is not alive (ended, killed on this host, or silent past the heartbeat's limit) is free.
`route_submits`: a route's submit rate limit, a leaky bucket: `level` submits, draining at the
route's rate, as of `at` (seconds since the epoch).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "route_slots",
        sa.Column("limit_name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(128), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "route_submits",
        sa.Column("limit_name", sa.String(128), primary_key=True),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("route_submits")
    op.drop_table("route_slots")
