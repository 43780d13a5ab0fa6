"""Roster import flags, resumable roster imports, registry snapshots with quarantined rows.

- rosterflag: an unreadable cell of an imported roster row, kept as typed for staff to check
  (also rows rejected for having no name, and rows of people already registered);
- rosterimport.source / status / done_rows / duplicates: a 受付番号 is keyed by its roster's
  source, and a long import commits chunk by chunk and can be continued after a kill;
- registrysnapshot.quarantined / quarantine_report: a snapshot loaded with
  `--quarantine-bad-rows` is marked incomplete with the number of rows left out.

Revision ID: 0004
Revises: 0002
"""
from __future__ import annotations

from pathlib import PurePath

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    """Idempotent, like 0002: a file whose version stamp is older than its tables (a restored
    backup, a hand-edited stamp) is brought up to date without failing."""
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("rosterflag"):
        _create_rosterflag()
    for table, column in _COLUMNS:
        if column.name not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, column)
    # rosters imported before: their source is their file name, as for new imports
    bind = op.get_bind()
    for rid, name in bind.execute(sa.text("SELECT id, source_file FROM rosterimport WHERE source = ''")).fetchall():
        bind.execute(sa.text("UPDATE rosterimport SET source = :s WHERE id = :i"), {"s": PurePath(name).stem, "i": rid})


def _create_rosterflag() -> None:
    op.create_table(
        "rosterflag",
        sa.Column("id", _STR(), nullable=False),
        sa.Column("roster_import_id", _STR(), nullable=False),
        sa.Column("evacuee_id", _STR(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("field", _STR(), nullable=False),
        sa.Column("value", _STR(), nullable=False),
        sa.Column("reason", _STR(), nullable=False),
        sa.Column("reason_ja", _STR(), nullable=False),
        sa.Column("kind", _STR(), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["roster_import_id"], ["rosterimport.id"]),
        sa.ForeignKeyConstraint(["evacuee_id"], ["evacuee.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rosterflag_import_line", "rosterflag", ["roster_import_id", "line"])
    op.create_index("ix_rosterflag_evacuee_id", "rosterflag", ["evacuee_id"])


# plain ADD COLUMN (constant defaults): no table rebuild, the foreign keys stay untouched
_COLUMNS = (
    ("rosterimport", sa.Column("source", _STR(), nullable=False, server_default="")),
    ("rosterimport", sa.Column("status", _STR(), nullable=False, server_default="done")),
    ("rosterimport", sa.Column("done_rows", sa.Integer(), nullable=False, server_default="0")),
    ("rosterimport", sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0")),
    ("registrysnapshot", sa.Column("quarantined", sa.Integer(), nullable=False, server_default="0")),
    ("registrysnapshot", sa.Column("quarantine_report", _STR(), nullable=False, server_default="")),
)


def downgrade() -> None:
    with op.batch_alter_table("registrysnapshot") as batch:
        batch.drop_column("quarantine_report")
        batch.drop_column("quarantined")
    with op.batch_alter_table("rosterimport") as batch:
        batch.drop_column("duplicates")
        batch.drop_column("done_rows")
        batch.drop_column("status")
        batch.drop_column("source")
    op.drop_index("ix_rosterflag_evacuee_id", "rosterflag")
    op.drop_index("ix_rosterflag_import_line", "rosterflag")
    op.drop_table("rosterflag")
