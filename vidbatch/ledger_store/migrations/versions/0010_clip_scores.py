"""Clip scores: what each finished clip measured ([qa.scores], vidbatch.scores) on its `delivered`
or `awaiting_review` row: prompt adherence, coherence, drift, motion, jitter, and the embedding
model that measured them. Nullable: clips made before scoring (or with it off) have none.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCORES = ("adherence", "coherence", "drift", "motion", "jitter")


def upgrade() -> None:
    with op.batch_alter_table("ledger_rows") as batch:
        for name in SCORES:
            batch.add_column(sa.Column(name, sa.Float, nullable=True))
        batch.add_column(sa.Column("score_model", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_rows") as batch:
        batch.drop_column("score_model")
        for name in reversed(SCORES):
            batch.drop_column(name)
