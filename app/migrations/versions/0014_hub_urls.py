"""Several hub URLs per laptop (a primary hub and its standbys): ``sync_device.hub_urls``.

Enrolment hands the laptop the list of every hub node (``ANPI_HUB_URLS`` at the hub); a sync
that cannot reach one hub, or meets a standby that refuses writes, tries the next
(:mod:`sync.failover`).  A JSON list of URLs; NULL on laptops enrolled before: they use ``hub_url``.

Revision ID: 0014
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    cols = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sync_device")}
    if "hub_urls" in cols:
        return  # a file rewound to an older revision (re-running must not fail)
    with op.batch_alter_table("sync_device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hub_urls", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_device", schema=None) as batch_op:
        batch_op.drop_column("hub_urls")
