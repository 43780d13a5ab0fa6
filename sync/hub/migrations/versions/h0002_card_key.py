"""The municipality's 避難者カード key (``hub_card_key``), handed to each laptop at enrolment.

Revision ID: h0002
Revises: h0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0002"
down_revision = "h0001"
branch_labels = None
depends_on = None

_T = "municipality_code = current_setting('anpi.municipality', true)"


def upgrade() -> None:
    op.create_table(
        "hub_card_key",
        sa.Column("municipality_code", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code"),
    )
    if op.get_bind().dialect.name == "postgresql":  # one municipality never sees another's key
        op.execute("ALTER TABLE hub_card_key ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE hub_card_key FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY anpi_tenant ON hub_card_key USING ({_T}) WITH CHECK ({_T})")


def downgrade() -> None:
    op.drop_table("hub_card_key")
