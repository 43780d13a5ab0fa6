"""The municipality's shelter list (避難所一覧): name, code, capacity, population, where it came from.

A 移動 (transfer) picks its destination from this list instead of typing a name by hand;
`remote_shelter` keeps the hub's list of the municipality's enrolled shelters (GET /v1/shelters).

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "remote_shelter" not in tables:  # the hub's list of the municipality's shelters (sync.models)
        op.create_table(
            "remote_shelter",
            sa.Column("code", sa.String(), primary_key=True),
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("population", sa.Integer(), nullable=True),
            sa.Column("seen_at", sa.DateTime(), nullable=False),
        )
    if "shelter_record" in tables:
        return  # a file rewound to an older revision (re-running must not fail)
    op.create_table(
        "shelter_record",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(), nullable=False, server_default=""),
        sa.Column("source", sa.String(), nullable=False, server_default="admin"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("shelter_record", schema=None) as batch_op:
        batch_op.create_index("ix_shelter_record_code", ["code"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("shelter_record", schema=None) as batch_op:
        batch_op.drop_index("ix_shelter_record_code")
    op.drop_table("shelter_record")
    op.drop_table("remote_shelter")
