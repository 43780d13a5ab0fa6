"""Issue 12 item 7 at the hub: every sync reports the laptop's audit head; a cut tail is caught there.

Real PostgreSQL as the RLS-confined hub role, real HTTP over loopback, the real `anpi` CLI on both
sides. The insider has the laptop's database *and* its audit key file, so the laptop alone cannot
tell: `anpi audit verify` there says OK, and only the hub's `anpi hub audit verify` sees the cut.
"""
from __future__ import annotations

import gc
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.db import open_shelter_db
from app.services import audit
from sync.hub import server
from tests.sync.helpers import ThreadedServer
from tests.web.helpers import build_shelter
from app.db_crypto import connect as db_connect

runner = CliRunner()


def anpi(*args: str, env: dict[str, str]) -> Any:
    return runner.invoke(cli_app, [str(a) for a in args], env=env, catch_exceptions=False)


class Who:
    def __init__(self, name: str, role: str = "staff") -> None:
        self.id, self.name, self.role = f"U-{name}", name, role


def write(db: Path, n: int, who: str = "佐藤", **kw: Any) -> None:
    engine = open_shelter_db(db)
    with Session(engine) as s:
        for i in range(n):
            audit.record(s, Who(who), kw.get("action", "view"), "GET /roster/{evacuee_id}", kw.get("subjects", [f"evacuee:E{i}"]),
                         kw.get("detail"), at=kw.get("at"))
        s.commit()
    engine.dispose()


@pytest.fixture
def hub(pg_hub, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = server.create_hub_app(pg_hub.url)
    with ThreadedServer(app) as srv:
        yield {"ANPI_HUB_DATABASE_URL": pg_hub.url, "url": srv.url}
    app.state.engine.dispose()


def enrolled_shelter(tmp_path: Path, hub: dict[str, str]) -> Path:
    env = {"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]}
    r = anpi("hub", "enroll", "第一小", "--json", env=env)
    assert r.exit_code == 0, r.output
    sh = build_shelter(tmp_path)
    r = anpi("--db", sh.db_path, "enroll", "--hub", hub["url"], "--code", json.loads(r.stdout)["code"], env={})
    assert r.exit_code == 0, r.output
    return sh.db_path


def sync(db: Path) -> Any:
    r = anpi("--db", db, "sync", "--json", env={})
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def hub_verify(hub: dict[str, str]) -> Any:
    return anpi("hub", "audit", "verify", "--device", "第一小", env={"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]})


def cut_tail(db: Path, keep: int) -> None:
    """The insider: drop the triggers, delete every entry after `keep`."""
    con = db_connect(db)
    with con:
        con.execute("DROP TRIGGER audit_entry_no_delete")
        con.execute("DELETE FROM audit_entry WHERE id > ?", (keep,))
    con.close()


def rechain(db: Path, drop: set[int]) -> None:
    """The insider with the key file: delete some entries and recompute every later hash and link."""
    con = db_connect(db)
    with con:
        con.execute("DROP TRIGGER audit_entry_no_delete")
        con.execute("DROP TRIGGER audit_entry_no_update")
    con.close()
    engine = open_shelter_db(db)
    with Session(engine) as s:
        key = audit.session_key(s)
        rows = audit.query(s, limit=10**6, newest_first=False)
        kept = [audit.AuditEntry(**{k: getattr(e, k) for k in audit.AuditEntry.model_fields}) for e in rows
                if e.id not in drop]
        for e in rows:
            s.delete(e)
        s.commit()
        prev = audit.GENESIS
        for n, e in enumerate(kept, start=1):
            e.id, e.prev_hash = n, prev
            e.hash = prev = audit.entry_hash(e, key)
            s.add(e)
        s.commit()
    engine.dispose()


@pytest.mark.parametrize("attack", ["cut_tail", "rechain"])
def test_a_cut_tail_is_caught_at_the_hub(tmp_path: Path, hub, attack: str) -> None:  # type: ignore[no-untyped-def]
    db = enrolled_shelter(tmp_path, hub)
    write(db, 10)
    assert sync(db)["audit"] == "first"
    r = hub_verify(hub)
    assert r.exit_code == 0 and "audit chain OK" in r.stdout, r.output
    write(db, 30, who="鈴木", action="search", subjects=["resident:1004"])  # what the insider wants gone
    assert sync(db)["audit"] == "ok"
    head = audit_head(db)
    if attack == "cut_tail":
        cut_tail(db, head - 30)
    else:
        rechain(db, set(range(head - 30, head - 5)))
    write(db, 40)  # the laptop keeps working: the chain grows past the old head again
    r = anpi("--db", db, "audit", "verify", env={})
    assert r.exit_code == 0, r.output  # the laptop alone cannot tell
    r = anpi("--db", db, "sync", env={})
    assert r.exit_code == 0 and "audit log as cut" in r.stderr, r.output
    r = hub_verify(hub)
    assert r.exit_code == 1 and "TAIL CUT" in r.stdout, r.output
    assert f"entry {head}" in r.stdout
    r = anpi("hub", "audit", "verify", "--device", "第一小", "--json", env={"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]})
    doc = json.loads(r.stdout)
    assert not doc["ok"] and [p["status"] for p in doc["problems"]] == ["cut"]
    assert doc["entries_held"] >= head  # the hub kept the copies of what was deleted


def audit_entries(db: Path) -> list[dict[str, Any]]:
    engine = open_shelter_db(db)
    with Session(engine) as s:
        rows = [audit.as_dict(e) for e in audit.query(s, limit=10**6, newest_first=False)]
    engine.dispose()
    return rows


def audit_head(db: Path) -> int:
    con = db_connect(db)
    n = con.execute("SELECT MAX(id) FROM audit_entry").fetchone()[0]
    con.close()
    return int(n)


def test_a_restore_is_named_not_called_a_cut(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    db = enrolled_shelter(tmp_path, hub)
    write(db, 5)
    r = anpi("--db", db, "backup", "--out", tmp_path / "b.db", env={})
    assert r.exit_code == 0, r.output
    write(db, 20)
    sync(db)
    gc.collect()  # the in-process `anpi sync` left its engine to the collector; a real process has exited
    r = anpi("--db", db, "restore", tmp_path / "b.db", "--yes", env={})
    assert r.exit_code == 0, r.output
    r = anpi("--db", db, "audit", "verify", env={})
    assert r.exit_code == 0, r.output  # the key file beside the database survived the restore
    assert sync(db)["audit"] == "restored"
    r = anpi("--db", db, "bundle", "export", "--out", tmp_path / "usb.anpi", env={})
    assert r.exit_code == 0, r.output
    last = audit_entries(db)[-1]
    assert (last["action"], last["screen"]) == ("export", "cli: anpi bundle export")
    r = hub_verify(hub)
    assert r.exit_code == 0 and "RESTORED" in r.stdout and "audit chain OK" in r.stdout, r.output


def test_hub_anomaly_report_across_laptops(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    db = enrolled_shelter(tmp_path, hub)
    night = datetime(2026, 11, 21, 17, 30, tzinfo=timezone.utc)  # 02:30 in Japan
    write(db, 30, who="佐藤", action="view", subjects=["evacuee:E1"], at=night - timedelta(hours=8))
    write(db, 25, who="鈴木", action="search", subjects=["resident:1001"], detail={"query": {"name": "髙橋"}})
    write(db, 1, who="鈴木", action="export", subjects=[], at=night)
    sync(db)
    r = anpi("hub", "audit", "anomalies", "--json", env={"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]})
    assert r.exit_code == 0, r.output
    flags = json.loads(r.stdout)["flags"]
    assert {(f["user"], f["rule"], f["device"]) for f in flags} == {
        ("鈴木", "unregistered_lookups", "第一小"), ("鈴木", "odd_hour_exports", "第一小")}
    engine = open_shelter_db(db)
    with Session(engine) as s:  # the ids point at the laptop's own entries
        for f in flags:
            assert {s.get(audit.AuditEntry, i).user_name for i in f["entry_ids"]} == {"鈴木"}  # type: ignore[union-attr]
    engine.dispose()
