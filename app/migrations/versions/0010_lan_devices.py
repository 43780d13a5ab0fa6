"""`anpi serve --lan` (issue 15): the devices paired with this laptop, and the laptop's TLS identity.

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "paired_device" not in tables:
        op.create_table(
            "paired_device",
            sa.Column("id", sa.String(), primary_key=True),
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("token_hash", sa.String(), nullable=False),
            sa.Column("client", sa.String(), nullable=False, server_default=""),
            sa.Column("paired_at", sa.DateTime(), nullable=False),
            sa.Column("revoked_at", sa.DateTime(), nullable=True),
            sa.Column("revoked_by", sa.String(), nullable=False, server_default=""),
        )
        with op.batch_alter_table("paired_device", schema=None) as batch_op:
            batch_op.create_index("ix_paired_device_token_hash", ["token_hash"], unique=True)
    if "lan_identity" not in tables:
        op.create_table(
            "lan_identity",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("cert_pem", sa.String(), nullable=False),
            sa.Column("key_pem", sa.String(), nullable=False),
            sa.Column("key_password", sa.String(), nullable=False),
            sa.Column("fingerprint", sa.String(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("lan_identity")
    with op.batch_alter_table("paired_device", schema=None) as batch_op:
        batch_op.drop_index("ix_paired_device_token_hash")
    op.drop_table("paired_device")
