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
