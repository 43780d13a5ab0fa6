"""Issue 18 (1): one shelter database on two laptops never loses a registration silently.

Real processes on loopback: a uvicorn hub (`python -m sync.hub`, on PostgreSQL and on SQLite) and
the `anpi` CLI for everything a laptop does (`roster import`, `enroll`, `backup`, `restore`, `sync`)
and for HQ (`anpi hub status`, `anpi hub fork apply`).

- two laptops restored from one backup both sync (exit 0) and the hub holds every registration of
  both exactly once — the restore gives each a provisional epoch and the hub then grants each its own;
- a laptop copied with `cp` writes other events under the same numbers: the hub stores none of
  them as its own and acknowledges none, the copy's `anpi sync` exits 1 saying what to do, keeps
  them pending, the hub counts them as review items, and after `anpi hub fork apply` the next
  sync exits 0 and the hub holds every registration exactly once.
"""
from __future__ import annotations

import json
import shutil
from tests.sync.helpers import connect_file
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from sync.hub import store
from tests.conftest import write_csv
from tests.sync.conftest import drop_pg_schema, new_pg_schema, require_pg
from tests.sync.helpers import free_port
from tests.sync.test_processes import ROOT, HubProcess, env

pytestmark = [pytest.mark.slow]


def anpi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=180)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r


@pytest.fixture(params=["postgres", "sqlite"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    require_pg()
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


def roster(tmp_path: Path, tag: str, n: int) -> Path:
    rows = [["受付番号", "氏名", "ふりがな", "生年月日", "性別", "住所"]]
    kana = "アイウエオカキクケコサシスセソ"
    # each roster's people are other people: the reading differs too (a duplicate is found by person)
    tag_kana = "".join("アイウエオカキクケコサシスセソタチツテトナニヌネノハ"[ord(c) % 26] for c in tag if c.isalnum())
    rows += [[f"{tag}-{i}", f"{tag}山 {kana[i]}子", f"{tag_kana}ヤマ {kana[i]}コ", f"1980-01-{i + 1:02d}", "女", "石巻市"]
             for i in range(n)]
    return write_csv(tmp_path / f"{tag}.csv", rows)


def registrations(db: Path) -> set[str]:
    con = connect_file(db)
    try:
        return {r[0] for r in con.execute("select payload from outbox_event where type = 'evacuee.registered'")}
    finally:
        con.close()


def evacuee_ids(db: Path) -> set[str]:
    con = connect_file(db)
    try:
        return {r[0] for r in con.execute("select id from evacuee")}
    finally:
        con.close()


def pending(db: Path) -> int:
    con = connect_file(db)
    try:
        return int(con.execute("select count(*) from outbox_event where acked_at is null").fetchone()[0])
    finally:
        con.close()


def hub_evacuees(url: str) -> list[str]:
    engine = store.open_hub_engine(url)
    try:
        with engine.connect() as c:
            return [r[0] for r in c.exec_driver_sql(
                "select evacuee_id from hub_evacuee where registered").all()]
    finally:
        engine.dispose()


def hub_status(url: str) -> dict:
    return json.loads(ok(anpi("hub", "status", "--json", "--database-url", url)).stdout)


def enrolled_laptop(tmp_path: Path, url: str, hub: HubProcess, name: str) -> Path:
    db = tmp_path / f"{name}.db"
    ok(anpi("--db", db, "roster", "import", roster(tmp_path, name, 4)))
    code = json.loads(ok(anpi("hub", "enroll", name, "--json", "--database-url", url)).stdout)["code"]
    ok(anpi("--db", db, "enroll", "--hub", hub.url, "--code", code, "--shelter-name", name))
    ok(anpi("--db", db, "sync"))
    return db


def test_two_laptops_restored_from_one_backup_both_deliver_everything(tmp_path: Path, hub_url: str) -> None:
    hub = HubProcess(hub_url, free_port())
    try:
        first = enrolled_laptop(tmp_path, hub_url, hub, "daini")
        (tmp_path / "usb").mkdir()
        ok(anpi("--db", first, "backup", "--out", tmp_path / "usb" / "daini.anpi-backup"))
        backup = tmp_path / "usb" / "daini.anpi-backup"
        ok(anpi("--db", first, "roster", "import", roster(tmp_path, "lost", 3)))  # after the backup
        ok(anpi("--db", first, "sync"))
        laptops = []
        for name in ("x", "y"):  # IT staff prepare two replacement laptops from the one backup
            db = tmp_path / f"laptop-{name}.db"
            ok(anpi("--db", db, "restore", backup, "--yes"))
            ok(anpi("--db", db, "roster", "import", roster(tmp_path, f"new{name}", 5)))  # offline, before any sync
            laptops.append(db)
        for db in laptops:
            r = ok(anpi("--db", db, "sync"))
            assert "0 pending" in r.stdout
            assert pending(db) == 0
        want = evacuee_ids(first) | evacuee_ids(laptops[0]) | evacuee_ids(laptops[1])
        held = hub_evacuees(hub_url)
        assert sorted(held) == sorted(want) and len(held) == 4 + 3 + 5 + 5  # every one, exactly once
        st = hub_status(hub_url)
        assert st["forks"] == 0 and st["review_items"] == 0
        # and later events of both laptops do not collide either (each has a hub-granted epoch)
        for db in laptops:
            ok(anpi("--db", db, "roster", "import", roster(tmp_path, f"later{db.stem}", 2)))
        for db in laptops:
            ok(anpi("--db", db, "sync"))
        assert len(hub_evacuees(hub_url)) == 4 + 3 + 5 + 5 + 2 + 2
        assert hub_status(hub_url)["forks"] == 0
    finally:
        hub.stop()


def test_a_copied_database_keeps_its_events_pending_until_hq_applies_them(tmp_path: Path, hub_url: str) -> None:
    hub = HubProcess(hub_url, free_port())
    try:
        original = enrolled_laptop(tmp_path, hub_url, hub, "sanchu")
        copy = tmp_path / "copy.db"
        shutil.copy(original, copy)  # a plain file copy (the CLI closed the database: no -wal left)
        assert not Path(f"{original}-wal").exists() or Path(f"{original}-wal").stat().st_size == 0
        ok(anpi("--db", original, "roster", "import", roster(tmp_path, "orig", 3)))
        ok(anpi("--db", copy, "roster", "import", roster(tmp_path, "copy", 3)))
        ok(anpi("--db", original, "sync"))
        before = pending(copy)
        r = anpi("--db", copy, "sync")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "NOT stored" in r.stderr and "ask HQ" in r.stderr and "anpi hub fork apply" in r.stderr
        assert pending(copy) == before > 0, (before, r.stderr)  # nothing silently "delivered"
        st = hub_status(hub_url)
        assert st["forks"] == before and st["review_items"] >= before
        held = set(hub_evacuees(hub_url))
        assert not (evacuee_ids(copy) - evacuee_ids(original)) & held  # not applied yet...
        r = anpi("--db", copy, "sync")  # ...and asking again changes nothing: still refused, still pending
        assert r.returncode == 1 and pending(copy) == before
        # the copy took a fresh epoch from the hub: what it records now is stored at once
        ok(anpi("--db", copy, "roster", "import", roster(tmp_path, "copy2", 2)))
        assert anpi("--db", copy, "sync").returncode == 1 and pending(copy) == before
        assert hub_status(hub_url)["forks"] == before
        # HQ reviews and applies; the copy's next sync marks them delivered
        ok(anpi("hub", "fork", "apply", "--database-url", hub_url))
        assert hub_status(hub_url)["review_items"] == 0
        r = ok(anpi("--db", copy, "sync"))
        assert pending(copy) == 0 and pending(original) == 0
        want = evacuee_ids(original) | evacuee_ids(copy)
        held_list = hub_evacuees(hub_url)
        assert sorted(held_list) == sorted(want) and len(held_list) == 4 + 3 + 3 + 2
    finally:
        hub.stop()
