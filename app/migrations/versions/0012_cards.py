"""避難者カード: the keys that sign and seal card QR codes, and arrivals registered from a scanned card.

Revision ID: 0012
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "card_key" not in tables:  # sync.models.CardKey
        op.create_table(
            "card_key",
            sa.Column("key_id", sa.String(), primary_key=True),
            sa.Column("scope", sa.String(), nullable=False),
            sa.Column("secret", sa.String(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
    if "card_arrival" not in tables:  # app.models.CardArrival
        op.create_table(
            "card_arrival",
            sa.Column("id", sa.String(), primary_key=True),
            sa.Column("evacuee_id", sa.String(), sa.ForeignKey("evacuee.id"), nullable=False),
            sa.Column("origin_evacuee_id", sa.String(), nullable=False),
            sa.Column("origin_shelter", sa.String(), nullable=False, server_default=""),
            sa.Column("origin_shelter_name", sa.String(), nullable=False, server_default=""),
            sa.Column("key_id", sa.String(), nullable=False, server_default=""),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("by_user", sa.String(), nullable=False, server_default=""),
        )
        op.create_index("ix_card_arrival_evacuee_id", "card_arrival", ["evacuee_id"])
        op.create_index("ix_card_arrival_origin_evacuee_id", "card_arrival", ["origin_evacuee_id"])


def downgrade() -> None:
    op.drop_table("card_arrival")
    op.drop_table("card_key")
