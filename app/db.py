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

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _set_sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _migrate(engine: Engine) -> None:
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
