"""Opening the shelter database: one SQLite file, WAL, synchronous=FULL, one writer connection.

Why these settings: a shelter laptop loses power without warning. WAL with synchronous=FULL
means a committed registration survives a power cut; foreign keys stop orphan rows; a single
pooled connection serialises writers so SQLite never answers "database is locked" to a tired
volunteer. Migrations (Alembic) run on every open, so an old database file keeps working
after the software is updated.

The file is encrypted (SQLCipher, key from the admin's passphrase: app/db_crypto.py). A plain
database written by an Anpi from before encryption is encrypted in place the first time it is
opened with a passphrase, so updating the software is all a shelter has to do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from app import db_crypto

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: the newest migration; tests/app/test_db.py checks it against Alembic's own head. Opening a
#: database that is already there skips importing Alembic (~0.15 s of every CLI command).
SCHEMA_HEAD = "0002"


def _set_sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
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


def sqlite_engine(path: str | Path, *, key: str | None = "") -> Engine:
    """An engine with the shelter pragmas and exactly one pooled connection, without migrating.

    `key` "" derives the key from the passphrase (app/db_crypto.py); None opens a plain file
    (never a shelter's: the tests build an old, pre-encryption database that way). SQLAlchemy's own `sqlite+pysqlcipher` dialect
    sends the key first on every new connection.
    """
    if key == "":
        key = db_crypto.key_for(path)
    if key is not None:
        url = URL.create("sqlite+pysqlcipher", password=key, database=str(Path(path)))
        extra: dict[str, Any] = {}
    else:  # plain SQLite through the same library (the dialect would insist on a key)
        url = URL.create("sqlite", database=str(Path(path)))
        extra = {"module": db_crypto.dbapi}
    engine = create_engine(
        url,
        **extra,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def open_shelter_db(path: str | Path, *, key: str | None = "") -> Engine:
    """Open (creating if needed) the shelter database at `path` and bring its schema up to date.

    Raises db_crypto.PassphraseNeeded / WrongPassphrase when the passphrase is missing or wrong.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if key is not None and db_crypto.is_plain_sqlite(path):
        db_crypto.encrypt_in_place(path)
        print(f"anpi: {path} was not encrypted; it is now (SQLCipher, key from the passphrase)", file=sys.stderr)
    if key == "":
        key = db_crypto.key_for(path)
    if key is not None and path.exists():  # a wrong passphrase: one clear line now, not a failure deep inside a command
        db_crypto.connect(path, key).close()
    engine = sqlite_engine(path, key=key)
    try:
        _migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def session(engine: Engine) -> Session:
    """A session that keeps loaded objects usable after commit (the CLI prints them)."""
    return Session(engine, expire_on_commit=False)
