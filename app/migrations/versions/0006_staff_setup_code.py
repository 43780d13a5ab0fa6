"""Staff accounts without a PIN can no longer be claimed by whoever comes first (issue 12, item 5).

A new account gets either a PIN or a one-time setup code (stored as an argon2 hash in
`staff.setup_hash`); choosing the first PIN needs that code. Accounts that an older version
created without a PIN have no setup code after this migration, so nobody can claim them until
an admin issues one (`anpi user setup-code NAME`, or 初期設定コード on the 利用者 page).

Revision ID: 0006
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("staff")}
    if "setup_hash" not in columns:  # idempotent: a file re-marked as older keeps its columns
        with op.batch_alter_table("staff") as batch:
            batch.add_column(sa.Column("setup_hash", sa.String(), nullable=True))
    # PIN-less accounts of an older version: "needs a setup code from an admin" (setup_hash NULL)
    op.execute("UPDATE staff SET setup_hash = NULL WHERE pin_hash IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("setup_hash")
