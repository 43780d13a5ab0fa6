"""Opening the shelter database: one SQLite file, WAL, synchronous=FULL, one writer connection.

Why these settings: a shelter laptop loses power without warning. WAL with synchronous=FULL
means a committed registration survives a power cut; foreign keys stop orphan rows; a single
pooled connection serialises writers so SQLite never answers "database is locked" to a tired
volunteer. Migrations (Alembic) run on every open, so an old database file keeps working
after the software is updated.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: the newest migration; tests/app/test_db.py checks it against Alembic's own head. Opening a
#: database that is already there skips importing Alembic (~0.15 s of every CLI command).
SCHEMA_HEAD = "0009"


def _set_sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError:  # a new file: no alembic_version table yet
            return None


def _migrate(engine: Engine) -> None:
    if _current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sqlite_engine(path: str | Path) -> Engine:
    """An engine with the shelter pragmas and exactly one pooled connection, without migrating."""
    engine = create_engine(
        f"sqlite:///{Path(path)}",
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def open_shelter_db(path: str | Path) -> Engine:
    """Open (creating if needed) the shelter database at `path` and bring its schema up to date."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlite_engine(path)
    _migrate(engine)
    return engine


def session(engine: Engine) -> Session:
    """A session that keeps loaded objects usable after commit (the CLI prints them)."""
    return Session(engine, expire_on_commit=False)
