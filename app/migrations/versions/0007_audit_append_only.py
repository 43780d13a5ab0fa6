"""The audit log refuses UPDATE and DELETE in the database itself.

The keyed chain (app/services/audit.py) makes a rewrite *detectable*; these triggers make the
everyday ways to do one (a hand-edit with the sqlite3 shell, a bug in our own code) fail at once.
Someone who drops the triggers first is still caught by the chain and, for a cut tail, by the
hub, which keeps the head each laptop reported at every sync.

Revision ID: 0007
Revises: 0002
"""
from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON audit_entry "
               "BEGIN SELECT RAISE(ABORT, 'audit_entry rows are append-only'); END")
    op.execute("CREATE TRIGGER IF NOT EXISTS audit_entry_no_delete BEFORE DELETE ON audit_entry "
               "BEGIN SELECT RAISE(ABORT, 'audit_entry rows are append-only'); END")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
    op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
