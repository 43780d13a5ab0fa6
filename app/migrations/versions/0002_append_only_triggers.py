"""Append-only guarantees enforced by the database itself, not only by our code.

Stay events, match decisions and outbox events are history: a bug or a hand-edit must not be
able to rewrite them silently.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

from sync.models import OUTBOX_TRIGGERS

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("stayevent", "matchdecision", "certificateevent", "inquiry", "hqconfirmation", "soughtlink")


def upgrade() -> None:
    for ddl in OUTBOX_TRIGGERS:
        op.execute(ddl)
    for table in APPEND_ONLY:
        op.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END")
        op.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END")


def downgrade() -> None:
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    op.execute("DROP TRIGGER IF EXISTS outbox_event_immutable")
    op.execute("DROP TRIGGER IF EXISTS outbox_event_no_delete")
