"""Issue 12 item 7 on the laptop: a keyed chain, old unkeyed chains, append-only triggers, CLI actions audited."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlmodel import Session

from app.audit_models import AuditEntry
from app.db import open_shelter_db
from app.services import audit
from app.services.audit_key import forget_cached_keys, key_file_for
from tests.conftest import Cli
from tests.web.helpers import build_shelter
from app import db_crypto
from app.db_crypto import connect as db_connect


class Who:
    id, name, role = "U1", "佐藤", "staff"


def legacy_chain(db: Path, n: int) -> None:
    """Entries as an older Anpi wrote them: plain SHA-256, no key, no marker."""
    engine = open_shelter_db(db)
    with Session(engine) as s:
        prev = audit.GENESIS
        for i in range(1, n + 1):
            e = AuditEntry(id=i, at=audit._utc(audit.utcnow()), user_id="U1", user_name="佐藤", role="staff",
                           action="view", screen="GET /roster", subjects='["evacuee:E1"]', detail="{}",
                           prev_hash=prev, hash="")
            e.hash = prev = audit.entry_hash(e)
            s.add(e)
            s.flush()
        s.commit()
    engine.dispose()


def verify(db: Path) -> audit.VerifyResult:
    engine = open_shelter_db(db)
    with Session(engine) as s:
        res = audit.verify(s)
    engine.dispose()
    return res


def record(db: Path, n: int = 1) -> None:
    engine = open_shelter_db(db)
    with Session(engine) as s:
        for _ in range(n):
            audit.record(s, Who(), "view", "GET /roster", ["evacuee:E2"])
        s.commit()
    engine.dispose()


def sql(db: Path, statement: str) -> None:
    con = db_connect(db)
    try:
        with con:
            con.execute(statement)
    finally:
        con.close()


def test_an_old_unkeyed_chain_verifies_and_keying_starts_at_a_marked_entry(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    legacy_chain(db, 4)
    assert verify(db).ok and verify(db).keyed_from is None
    record(db, 3)
    res = verify(db)
    assert res.ok and res.entries == 8 and res.keyed_from == 5 and res.head_id == 8
    engine = open_shelter_db(db)
    with Session(engine) as s:
        marker = s.get(AuditEntry, 5)
        assert marker is not None and marker.action == audit.KEY_MARKER
        assert json.loads(marker.detail)["keyed_from"] == 5
        key = audit.session_key(s)
        later = s.get(AuditEntry, 6)
        assert later is not None and later.hash == audit.entry_hash(later, key) != audit.entry_hash(later)
    engine.dispose()
    sql(db, "DROP TRIGGER audit_entry_no_update")
    sql(db, "UPDATE audit_entry SET screen = 'x' WHERE id = 2")  # the old part is still checked
    assert verify(db).first_bad_id == 2


def test_a_keyed_entry_rewritten_without_the_key_is_found(tmp_path: Path) -> None:
    """Recomputing a keyed entry as plain SHA-256 (what worked on the old chain) no longer passes."""
    db = tmp_path / "a.db"
    record(db, 5)
    engine = open_shelter_db(db)
    with Session(engine) as s:
        e = s.get(AuditEntry, 3)
        assert e is not None
        e.detail = '{"q":"別人"}'
        forged = audit.entry_hash(e)
    engine.dispose()
    sql(db, "DROP TRIGGER audit_entry_no_update")
    sql(db, f"UPDATE audit_entry SET detail = '{{\"q\":\"別人\"}}', hash = '{forged}' WHERE id = 3")
    res = verify(db)
    assert not res.ok and res.first_bad_id == 3


def test_the_database_refuses_update_and_delete(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    record(db, 3)
    for statement in ("UPDATE audit_entry SET user_name = '誰か' WHERE id = 2", "DELETE FROM audit_entry WHERE id = 3",
                      "DELETE FROM audit_entry"):
        with pytest.raises(db_crypto.IntegrityError, match="append-only"):
            sql(db, statement)
    assert verify(db).ok and verify(db).entries == 4


def test_the_key_lives_outside_the_database_and_its_backup(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    record(db, 2)
    key_file = key_file_for(db)
    assert key_file == Path(str(db) + ".audit-key") and key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_hex = key_file.read_text().strip()
    cli = Cli(db)
    code, _, err = cli("backup", "--out", str(tmp_path / "b.db"))
    assert code == 0, err
    for f in (db, tmp_path / "b.db"):
        raw = f.read_bytes()
        assert key_hex.encode() not in raw and bytes.fromhex(key_hex) not in raw


def test_without_its_key_the_keyed_part_cannot_be_verified_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    record(db, 2)
    key_file = Path(str(db) + ".audit-key")
    key_file.rename(tmp_path / "elsewhere.key")
    forget_cached_keys()
    code, out, err = Cli(db)("audit", "verify")
    assert code == 1 and "keyed with audit key" in err and "not on this laptop" in err
    os.environ["ANPI_AUDIT_KEY_FILE"] = str(tmp_path / "elsewhere.key")  # e.g. the copy kept with the passphrase
    try:
        forget_cached_keys()
        code, out, err = Cli(db)("audit", "verify")
        assert code == 0 and "keyed from entry 1" in out, err
    finally:
        del os.environ["ANPI_AUDIT_KEY_FILE"]
        forget_cached_keys()


def actions(db: Path) -> list[tuple[str, str]]:
    engine = open_shelter_db(db)
    with Session(engine) as s:
        rows = [(e.action, e.screen) for e in audit.query(s, limit=1000, newest_first=False)]
    engine.dispose()
    return rows


def test_cli_actions_are_audited(tmp_path: Path) -> None:
    sh = build_shelter(tmp_path)
    cli = Cli(sh.db_path)
    steps = [
        (("user", "add", "--name", "新入り", "--role", "desk", "--pin", "4321"), "user_add"),
        (("user", "disable", "新入り"), "user_disable"),
        (("registry", "import", str(sh.registry_csv)), "registry_import"),  # nothing new (already imported): still audited
        (("backup", "--out", str(tmp_path / "b.db")), "backup"),
        (("restore", str(tmp_path / "b.db"), "--yes"), "restore"),  # (before match: its matcher cache keeps the file open)
        (("match", "--name", "髙橋 一郎", "--address", "高田町"), "search"),
        (("reconcile", "--out", str(tmp_path / "r.csv")), "export"),
        (("export", "anpi-list", "--format", "csv", "--out", str(tmp_path / "l.csv")), "export"),
        (("hq", "confirm", "1001", "--status", "confirmed_other", "--method", "電話", "--by", "本部"), "hq_confirm"),
        (("certificate", "issue", "--resident-id", "1001", "--kind", "hisai", "--cause", "地震", "--in-person",
          "--id-note", "運転免許証"), "certificate_issue"),
        (("certificate", "list"), "view"),
    ]
    for args, action in steps:
        gc.collect()  # in-process commands leave engines to the collector; `restore` wants the file free
        code, _, err = cli(*args)
        assert code == 0, (args, err)
        assert action in [a for a, _ in actions(sh.db_path)[-2:]], (args, actions(sh.db_path)[-3:])
    code, out, err = cli("audit", "verify")
    assert code == 0, err
