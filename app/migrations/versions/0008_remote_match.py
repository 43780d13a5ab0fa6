"""The engine's decision about an evacuee another shelter registered, pulled from the hub.

Another laptop (without this registry, or an older version) may push a registration with no
match decision of its own; this laptop matches it against its registry as it is pulled, so
HQ's list shows that person as in a shelter without anyone running a command.

Revision ID: 0008
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "remote_match" in sa.inspect(op.get_bind()).get_table_names():
        return  # a file rewound to an older revision (re-running must not fail)
    op.create_table(
        "remote_match",
        sa.Column("evacuee_id", sa.String(), primary_key=True),
        sa.Column("resident_id", sa.String(), nullable=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("reasons", sa.String(), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("remote_match", schema=None) as batch_op:
        batch_op.create_index("ix_remote_match_resident_id", ["resident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("remote_match", schema=None) as batch_op:
        batch_op.drop_index("ix_remote_match_resident_id")
    op.drop_table("remote_match")
