"""Opening the shelter database: one SQLite file, WAL, synchronous=FULL, one writer connection.

Why these settings: a shelter laptop loses power without warning. WAL with synchronous=FULL
means a committed registration survives a power cut; foreign keys stop orphan rows; a single
pooled writer connection serialises this process's writers. It cannot stop another process
(`anpi roster import`, `anpi backup`) from holding SQLite's write lock, so a write may still wait
up to the busy timeout and then fail with "database is locked": `db_trouble` names that (and a
full disk) so the faces answer "busy, try again" instead of a bare error. Reads use a separate
pool of query-only connections (`read_engine`): in WAL mode a reader never waits for a writer.
Migrations (Alembic) run on every open, so an old database file keeps working after the
software is updated.

The file is encrypted (SQLCipher, key from the admin's passphrase: app/db_crypto.py). A plain
database written by an Anpi from before encryption is encrypted in place the first time it is
opened with a passphrase, so updating the software is all a shelter has to do.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from app import db_crypto

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: the newest migration; tests/app/test_db.py checks it against Alembic's own head. Opening a
#: database that is already there skips importing Alembic (~0.15 s of every CLI command).
SCHEMA_HEAD = "0014"


#: seconds a write waits for SQLite's write lock (and for this process's one writer connection)
#: before giving up; the CLI default. `anpi serve` passes ANPI_BUSY_TIMEOUT_SECONDS instead.
BUSY_TIMEOUT_S = 30.0
#: query-only connections for reads; a few, so a slow page does not hold up the next one
READ_POOL_SIZE = 4


def _set_sqlite_pragmas(dbapi_conn: Any, _record: object, *, busy_ms: int = 30000,
                        read_only: bool = False) -> None:
    cur = dbapi_conn.cursor()
    if not read_only:  # the journal mode is stored in the file: the writer sets it once
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    if read_only:
        # sorting in memory: a read must not need free disk space (it keeps working on a full disk)
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute("PRAGMA query_only=ON")
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


def sqlite_engine(path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S, read_only: bool = False,
                  key: str | None = "") -> Engine:
    """An engine with the shelter pragmas, without migrating: exactly one pooled connection for
    writing, or (`read_only`) a few query-only ones that never take the write lock.

    The writer's pool timeout equals the busy timeout, so a write queued behind another request
    of this process gives up after the same wait as one queued behind another process.
    `key` "" derives the key from the passphrase (app/db_crypto.py); None opens a plain file
    (never a shelter's: the tests build an old, pre-encryption database that way). SQLAlchemy's
    own `sqlite+pysqlcipher` dialect sends the key first on every new connection, read-only ones too."""
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
        pool_size=READ_POOL_SIZE if read_only else 1,
        max_overflow=0,
        pool_timeout=busy_timeout_s,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
    )
    event.listen(engine, "connect", partial(_set_sqlite_pragmas, busy_ms=int(busy_timeout_s * 1000),
                                            read_only=read_only))
    return engine


def read_engine(path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S, key: str | None = "") -> Engine:
    """Query-only connections to an already opened (migrated, WAL) shelter database: in WAL mode
    they read the last committed state while a write is in progress instead of queueing behind it."""
    return sqlite_engine(path, busy_timeout_s=busy_timeout_s, read_only=True, key=key)


def open_shelter_db(path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S, key: str | None = "") -> Engine:
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
    engine = sqlite_engine(path, busy_timeout_s=busy_timeout_s, key=key)
    try:
        _migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


class ReadFirstSession(Session):
    """A session for a request that only looks: its queries go to the query-only pool, while
    flushes, INSERT/UPDATE/DELETE statements and the tables given in `binds` (the audit log, whose
    next entry must be computed on the writer) go to `writer`. A look thus waits for the write
    lock only for its own audit entry, never for its reads."""

    def __init__(self, reader: Engine, writer: Engine, write_tables: dict[Any, Engine] | None = None,
                 **kw: Any) -> None:
        super().__init__(bind=reader, binds=write_tables or {}, **kw)
        self._writer = writer

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        if self._flushing or getattr(clause, "is_dml", False):
            return self._writer
        return super().get_bind(mapper=mapper, clause=clause, **kw)


DbTrouble = Literal["busy", "disk_full"]
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def db_trouble(exc: BaseException) -> DbTrouble | None:
    """"busy" when a write gave up waiting for the lock (another writer held it past the busy
    timeout), "disk_full" when SQLite or the file system ran out of space, else None.

    Looks through SQLAlchemy's wrapper and the exception chain, because the same SQLite error
    reaches the faces wrapped (DBAPIError) or raw (a raw connection, a thread)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, PoolTimeout):  # this process's one writer connection stayed busy
            return "busy"
        if isinstance(cur, DBAPIError) and cur.orig is not None:
            cur = cur.orig
            continue
        found = _classify_one(cur)
        if found:
            return found
        cur = cur.__cause__ or cur.__context__
    return None


def _classify_one(exc: BaseException) -> DbTrouble | None:
    if isinstance(exc, (sqlite3.Error, db_crypto.Error)):  # the system's SQLite or SQLCipher's
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text_ = str(exc).lower()
        if primary in _BUSY_CODES or "database is locked" in text_ or "database table is locked" in text_:
            return "busy"
        if primary == sqlite3.SQLITE_FULL or "disk is full" in text_:
            return "disk_full"
        return None
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return "disk_full"
    return None


def session(engine: Engine) -> Session:
    """A session that keeps loaded objects usable after commit (the CLI prints them)."""
    return Session(engine, expire_on_commit=False)
