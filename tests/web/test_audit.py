"""The audit log: a hash chain any change breaks, `anpi audit verify/export`, and the record function."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services import audit
from tests.web.server import audit_cli
from app.db_crypto import connect as db_connect


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    eng = open_shelter_db(tmp_path / "a.db")
    yield eng
    eng.dispose()


def insider(db: str | Path, sql: str) -> None:
    """What someone with the sqlite3 shell does: drop the append-only triggers, then edit."""
    con = db_connect(db)
    with con:
        con.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        con.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
        con.execute(sql)
    con.close()


class Who:
    id, name, role = "01STAFF", "佐藤", "staff"


def _fill(engine, n: int = 5) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        for i in range(n):
            audit.record(s, Who(), "view", "GET /roster/{evacuee_id}", [f"evacuee:E{i}", f"evacuee:E{i}", "resident:1001"],
                         {"q": f"高橋{i}"})
        s.commit()


def test_chain_links_every_entry(engine) -> None:  # type: ignore[no-untyped-def]
    _fill(engine)
    with Session(engine) as s:
        rows = audit.query(s, newest_first=False)
        assert [r.id for r in rows] == [1, 2, 3, 4, 5, 6]
        assert rows[0].action == audit.KEY_MARKER and rows[0].prev_hash == audit.GENESIS  # keyed from the start
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
        assert json.loads(rows[1].subjects) == ["evacuee:E0", "resident:1001"]  # duplicates dropped
        assert rows[1].user_name == "佐藤" and rows[1].role == "staff"
        assert audit.verify(s).ok and audit.verify(s).entries == 6 and audit.verify(s).keyed_from == 1


@pytest.mark.parametrize("sql, bad", [
    ("UPDATE audit_entry SET detail = '{\"q\":\"山田\"}' WHERE id = 3", 3),
    ("UPDATE audit_entry SET user_name = '鈴木' WHERE id = 2", 2),
    ("UPDATE audit_entry SET at = '2020-01-01 00:00:00.000000' WHERE id = 4", 4),
    ("DELETE FROM audit_entry WHERE id = 3", 4),
])
def test_any_change_is_found_and_named(engine, sql: str, bad: int) -> None:  # type: ignore[no-untyped-def]
    _fill(engine)
    insider(engine.url.database, sql)
    with Session(engine) as s:
        res = audit.verify(s)
    assert not res.ok and res.first_bad_id == bad
    assert res.reason_ja


def test_rewriting_the_whole_tail_is_still_found(engine) -> None:  # type: ignore[no-untyped-def]
    """Recomputing one entry's own hash does not help: the next entry's link no longer fits."""
    _fill(engine)
    with Session(engine) as s:
        e = audit.query(s, newest_first=False)[1]
        e.detail = '{"q":"改ざん"}'
        new_hash = audit.entry_hash(e, audit.session_key(s))  # even with the key
    insider(engine.url.database, f"UPDATE audit_entry SET detail = '{e.detail}', hash = '{new_hash}' WHERE id = 2")
    with Session(engine) as s:
        res = audit.verify(s)
    assert not res.ok and res.first_bad_id == 3


def test_filters(engine) -> None:  # type: ignore[no-untyped-def]
    _fill(engine)
    with Session(engine) as s:
        audit.record(s, "cli:root", "export", "cli", detail={"file": "roster.csv"})
        s.commit()
        assert len(audit.query(s, audit.AuditFilter(user="佐藤"))) == 5
        assert len(audit.query(s, audit.AuditFilter(action="export"))) == 1
        assert len(audit.query(s, audit.AuditFilter(subject="E3"))) == 1
        assert len(audit.query(s, audit.AuditFilter(text="高橋2"))) == 1
        assert len(audit.query(s, audit.AuditFilter(text="roster.csv"))) == 1


def test_cli_verify_and_export(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _fill(engine, 3)
    db = Path(engine.url.database)
    code, out = audit_cli(db, "verify")
    assert code == 0 and "4 entries" in out
    code, out = audit_cli(db, "export", "--out", str(tmp_path / "audit.csv"))
    assert code == 0, out
    with (tmp_path / "audit.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [r["action"] for r in rows] == [audit.KEY_MARKER, "view", "view", "view", "audit_export"]  # the export too
    code, out = audit_cli(db, "export", "--out", str(tmp_path / "audit.jsonl"))
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6 and lines[1]["subjects"] == ["evacuee:E0", "resident:1001"]
    assert lines[-1]["prev_hash"] == lines[-2]["hash"]
    code, out = audit_cli(db, "verify", "--json")
    assert code == 0 and json.loads(out)["entries"] == 6
    insider(db, "UPDATE audit_entry SET screen = 'x' WHERE id = 2")
    code, out = audit_cli(db, "verify")
    assert code == 1 and "entry 2" in out
