"""Opening the shelter database: migrations, and the shortcut that skips Alembic when up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from app.db import SCHEMA_HEAD, alembic_config, open_shelter_db
from app.db_crypto import connect as db_connect

ROOT = Path(__file__).resolve().parents[2]


def test_schema_head_is_alembics_head() -> None:
    """A new migration must also move SCHEMA_HEAD, or databases would never be upgraded past it."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def test_new_file_is_migrated_and_reopening_skips_alembic(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    open_shelter_db(db).dispose()
    with db_connect(db) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (SCHEMA_HEAD,)
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'evacuee'").fetchone() == (1,)
    code = ("import sys; from app.db import open_shelter_db; open_shelter_db(sys.argv[1]).dispose(); "
            "print('alembic' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, str(db)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_an_older_schema_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    open_shelter_db(db).dispose()
    with db_connect(db) as con:  # as if the file was written before the newest migration
        con.execute("UPDATE alembic_version SET version_num = '0001'")
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            con.execute(f'DROP TRIGGER "{name}"')
    open_shelter_db(db).dispose()
    with db_connect(db) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (SCHEMA_HEAD,)
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] > 0


def test_reads_do_not_wait_for_a_held_write_lock_and_a_timed_out_write_is_named_busy(tmp_path: Path) -> None:
    """WAL + the query-only pool: a read answers at once while another process holds the write lock;
    the writer gives up after its busy timeout with an error `db_trouble` calls "busy"."""
    import time

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from app.db import db_trouble, read_engine

    db = tmp_path / "s.db"
    writer = open_shelter_db(db, busy_timeout_s=0.3)
    reader = read_engine(db, busy_timeout_s=0.3)
    holder = db_connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM evacuee")).scalar() == 0
        assert time.monotonic() - t0 < 0.25
        with pytest.raises(OperationalError) as caught, writer.begin() as conn:
            conn.execute(text("DELETE FROM evacuee"))
        assert db_trouble(caught.value) == "busy"
        with pytest.raises(OperationalError) as refused, reader.begin() as conn:  # query-only: never a writer
            conn.execute(text("DELETE FROM evacuee"))
        assert db_trouble(refused.value) is None
    finally:
        holder.rollback()
        holder.close()
        writer.dispose()
        reader.dispose()


def test_db_trouble_names_a_full_disk_and_nothing_else() -> None:
    import errno

    from app.db import db_trouble

    assert db_trouble(OSError(errno.ENOSPC, "No space left on device")) == "disk_full"
    assert db_trouble(OSError(errno.EACCES, "Permission denied")) is None
    assert db_trouble(ValueError("database is locked")) is None  # only SQLite's own errors count


def test_waiting_for_this_process_s_one_writer_connection_is_busy_too(tmp_path: Path) -> None:
    """A request queued behind another request's long write gives up after the same timeout, as "busy"."""
    import pytest
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from app.db import db_trouble

    writer = open_shelter_db(tmp_path / "s.db", busy_timeout_s=0.2)
    try:
        with writer.connect():  # the one pooled writer connection, in use
            with pytest.raises(PoolTimeout) as caught:
                writer.connect()
        assert db_trouble(caught.value) == "busy"
    finally:
        writer.dispose()
