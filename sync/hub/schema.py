"""The hub's schema under Alembic (``sync/hub/migrations``, version table ``anpi_hub_alembic_version``).

Why separate from the shelter's migrations (``app/migrations``): the hub runs on PostgreSQL with
row-level security, the shelter on SQLCipher; they share no table, and one database never holds
both.  :func:`migrate` runs at every :func:`sync.hub.store.open_hub_engine` (cheap when the database
is at head) and by ``anpi hub db upgrade``:

* a new database gets the baseline and every later revision;
* a database created by the release before Alembic (hub tables, no version table) is adopted: the
  baseline is idempotent (creates only what is missing), then the later revisions run;
* a database at a revision this code does not know (written by a newer release) is refused with
  :class:`HubSchemaError` — an older hub must never write into a schema it does not understand.

Every step runs in one transaction under a hub-wide lock (``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so hub processes starting together migrate once.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from sync.errors import SyncError, TenantError

VERSION_TABLE = "anpi_hub_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class HubSchemaError(SyncError):
    """The hub database cannot be used by this code (too old to adopt, or newer than the code)."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's hub revision (``None``: not under Alembic yet)."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _refuse_unusable(conn: Connection, current: str | None) -> None:
    if current is not None:
        if not _known(current):
            raise HubSchemaError(
                f"this hub database is at schema revision {current}, newer than this version of anpi "
                f"knows (head {head_revision()}); run the newer anpi, or restore a backup made for this one")
        return
    insp = inspect(conn)
    if insp.has_table("hub_event") and "municipality_code" not in {c["name"] for c in insp.get_columns("hub_event")}:
        raise TenantError("this hub database predates municipalities (no municipality_code column); "
                          "export its events as bundles and import them into a new hub database")


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":  # SQLite: the transaction began IMMEDIATE (one writer)
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727275, hashtext(current_schema()))")


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Bring the hub database to head; returns (revision before, revision after)."""
    head = head_revision()
    with engine.connect() as conn:
        before = current_revision(conn)
    if before == head:
        return before, head
    with engine.begin() as conn:
        _lock(conn)
        before = current_revision(conn)  # another process may have migrated meanwhile
        _refuse_unusable(conn, before)
        if before != head:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return before, head


def describe(engine: Engine) -> dict[str, str | bool | None]:
    """For ``anpi hub db current``: the database's revision, the code's head, and whether this
    code knows the database's revision (``False``: written by a newer version)."""
    with engine.connect() as conn:
        current = current_revision(conn)
    known = current is None or _known(current)
    return {"current": current, "head": head_revision(), "known": known}


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown id
        return False
