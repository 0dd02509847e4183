"""The ledger names what a row's `provider` column always held: the route (a name in the
policy's [routes]), not a provider kind or vendor.

`ALTER TABLE ... RENAME COLUMN` changes only the catalogue on both SQLite (3.25 or later) and
PostgreSQL, and carries the column's indexes along, so a ledger of millions of rows migrates at
once (a batch "move and copy" would rewrite it).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ledger_rows RENAME COLUMN provider TO route")


def downgrade() -> None:
    op.execute("ALTER TABLE ledger_rows RENAME COLUMN route TO provider")
