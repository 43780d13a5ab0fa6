"""本人記入 (self-registration): forms evacuees typed at the kiosk, waiting for the desk.

Revision ID: 0011
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "self_entry" in sa.inspect(op.get_bind()).get_table_names():
        return  # a file rewound to an older revision (re-running must not fail)
    op.create_table(
        "self_entry",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("ticket", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(), nullable=False, server_default="ja"),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False, server_default="waiting"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_by", sa.String(), nullable=False, server_default=""),
        sa.Column("household_key", sa.String(), nullable=False, server_default=""),
    )
    with op.batch_alter_table("self_entry", schema=None) as batch_op:
        batch_op.create_index("ix_self_entry_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("self_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_self_entry_status")
    op.drop_table("self_entry")
