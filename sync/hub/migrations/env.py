"""Alembic environment of the *hub* schema: runs on the connection that :mod:`sync.hub.schema`
hands over (no alembic.ini), with its own version table so a database never mixes the hub's
revisions with the shelter's (``app/migrations``)."""
from __future__ import annotations

from alembic import context

from sync.hub.schema import VERSION_TABLE
from sync.hub.store import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic revision --autogenerate` by hand
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()

context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
