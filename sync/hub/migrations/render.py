"""Print the Alembic operations that bring a hub database to today's ``sync/hub/store.py``.

    python -m sync.hub.migrations.render sqlite:////tmp/h.db

Use it when writing a new hub revision (ARCHITECTURE.md §9): open a scratch database at the
previous head (``anpi hub db upgrade`` on a checkout without your revision, or simply run this on
a fresh file — it migrates to the current head first), then paste the printed operations into the
``upgrade()`` of the new ``hNNNN_*.py``.
"""
from __future__ import annotations

import sys

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext

from sync.hub import schema, store


def render(database_url: str) -> str:
    engine = store.hub_engine(database_url, pool_size=1)
    try:
        schema.migrate(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": schema.VERSION_TABLE})
            ops = produce_migrations(ctx, store.metadata)
    finally:
        engine.dispose()
    return render_python_code(ops.upgrade_ops, sqlalchemy_module_prefix="sa.", alembic_module_prefix="op.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m sync.hub.migrations.render DATABASE_URL")
    print(render(sys.argv[1]))
