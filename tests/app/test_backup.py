"""`anpi backup` / `anpi restore`, automatic backups with rotation, and the dashboard's backup card.

Real SQLite files in tmp_path, the real CLI (in-process), a real hub over the ASGI transport for
the epoch check, and the real web app for the dashboard.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.db import open_shelter_db
from app.models import BackupRecord, Evacuee
from app.services import backup as bk
from app.services.roster import EvacueeInput, register
from tests.conftest import Cli
from tests.web.helpers import build_shelter, login
from app.db_crypto import connect as db_connect


def _evacuee_names(db: Path) -> set[str]:
    con = db_connect(db)
    try:
        return {r[0] for r in con.execute("SELECT name_raw FROM evacuee")}
    finally:
        con.close()


def _register(db: Path, name: str) -> None:
    engine = open_shelter_db(db)
    with Session(engine) as s:
        register(s, EvacueeInput(name=name, birth_date="1980-01-01", sex="男"), by="test")
        s.commit()
    engine.dispose()


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path)


@pytest.fixture
def usb(tmp_path: Path) -> Path:
    p = tmp_path / "usb"
    p.mkdir()
    return p


def test_backup_and_restore_round_trip(shelter, usb: Path) -> None:  # type: ignore[no-untyped-def]
    db = shelter.db_path
    cli = Cli(db)
    code, out, err = cli("backup", "--out", usb / "b.db")
    assert code == 0, err
    assert "backup written" in out and "integrity ok" in out
    copy = usb / "b.db"
    sha = bk.file_sha256(copy)
    assert (usb / "b.db.sha256").read_text() == f"{sha}  b.db\n"
    assert not list(usb.glob("*.partial"))
    check = bk.check_database(copy)
    assert check.problems == [] and check.counts["evacuee"] == 2 and check.counts["resident"] == 8
    # the attempt is recorded in the live database (the dashboard reads it) and audited
    engine = open_shelter_db(db)
    with Session(engine) as s:
        rec = s.exec(select(BackupRecord)).one()
        assert (rec.ok, rec.kind, rec.sha256, rec.path) == (True, "manual", sha, str(copy))
    engine.dispose()
    con = db_connect(db)
    assert con.execute("SELECT COUNT(*) FROM audit_entry WHERE action = 'backup'").fetchone()[0] == 1
    con.close()

    _register(db, "後から 来た")  # happens after the backup, then the laptop "breaks"
    code, out, err = cli("restore", copy, "--yes")
    assert code == 0, err
    assert "checksum ok" in out and "previous database kept as" in out and "provisional sync epoch" in out
    assert _evacuee_names(db) == {"渡辺 稔", "ささき けん"}
    kept = next(db.parent.glob("shelter.db.before-restore-*"))
    assert "後から 来た" in _evacuee_names(kept)  # the replaced database is never lost
    assert bk.check_database(db).problems == []
    con = db_connect(db)
    assert con.execute("SELECT COUNT(*) FROM audit_entry WHERE action = 'restore'").fetchone()[0] == 1
    con.close()
    # a second restore keeps both earlier databases
    code, out, err = cli("restore", copy, "--yes")
    assert code == 0, err
    assert len(list(db.parent.glob("shelter.db.before-restore-*"))) == 2


def test_backup_to_missing_folder_is_a_one_line_error_and_recorded(shelter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = Cli(shelter.db_path)("backup", "--out", tmp_path / "unplugged" / "b.db")
    assert code == 1
    assert err.strip().count("\n") == 0 and "does not exist" in err and "USB" in err
    engine = open_shelter_db(shelter.db_path)
    with Session(engine) as s:
        rec = s.exec(select(BackupRecord)).one()
        assert not rec.ok and "見つかりません" in rec.message
    engine.dispose()


def test_backup_of_missing_database_and_onto_itself(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    code, _, err = Cli(tmp_path / "none.db")("backup", "--out", tmp_path / "b.db")
    assert code == 1 and "no database" in err
    assert not (tmp_path / "none.db").exists()  # a backup never creates an empty database
    code, _, err = Cli(shelter.db_path)("backup", "--out", shelter.db_path)
    assert code == 1 and "database itself" in err


def _page_of(db: Path, table: str) -> tuple[int, int]:
    con = db_connect(db)
    try:
        page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        con.close()
    return page_size, root


def _unchanged(db: Path, names: set[str]) -> None:
    assert _evacuee_names(db) == names
    assert not list(db.parent.glob("shelter.db.before-restore-*"))
    assert not list(db.parent.glob(".*.partial"))


def test_damaged_or_foreign_files_are_refused(shelter, usb: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = shelter.db_path
    cli = Cli(db)
    assert cli("backup", "--out", usb / "good.db")[0] == 0
    good = (usb / "good.db").read_bytes()
    names = _evacuee_names(db)

    def refused(file: Path, *needles: str) -> None:
        code, _, err = cli("restore", file, "--yes")
        assert code == 1 and err.strip().count("\n") == 0, err  # one line, no traceback
        assert all(n in err for n in needles), err
        _unchanged(db, names)

    # truncated (a copy interrupted by pulling the stick)
    (usb / "trunc.db").write_bytes(good[: len(good) // 2])
    refused(usb / "trunc.db", "trunc.db", "damaged", "nothing was changed")

    # a b-tree page overwritten: integrity_check finds it even without a checksum file
    page_size, root = _page_of(usb / "good.db", "evacuee")
    bad = bytearray(good)
    bad[(root - 1) * page_size: (root - 1) * page_size + 8] = b"\xff" * 8
    (usb / "flipped.db").write_bytes(bytes(bad))
    refused(usb / "flipped.db", "flipped.db", "damaged")

    # one changed byte inside a page (the file is encrypted: no name to find in it): the .sha256
    # beside the file says so before anything else looks
    i = (root - 1) * page_size + page_size // 2
    bad = bytearray(good)
    bad[i + 2] ^= 0x01
    (usb / "bit.db").write_bytes(bytes(bad))
    (usb / "bit.db.sha256").write_text((usb / "good.db.sha256").read_text().replace("good.db", "bit.db"))
    refused(usb / "bit.db", "does not match")

    # not SQLite at all, SQLite but not Anpi, Anpi from a newer version, no file
    (usb / "text.db").write_text("宛名番号,氏\n1,a\n", encoding="utf-8")
    refused(usb / "text.db", "not an SQLite database")
    other = usb / "other.db"
    con = db_connect(other)
    con.execute("CREATE TABLE foo (x)")
    con.commit()
    con.close()
    refused(other, "not an Anpi")
    newer = usb / "newer.db"
    newer.write_bytes(good)
    con = db_connect(newer)
    con.execute("UPDATE alembic_version SET version_num = '9999_future'")
    con.commit()
    con.close()
    refused(newer, "newer version of Anpi")
    refused(usb / "missing.db", "does not exist")


def test_restore_asks_for_confirmation_when_piped(shelter, usb: Path) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(shelter.db_path)
    assert cli("backup", "--out", usb / "b.db")[0] == 0
    code, _, err = cli("restore", usb / "b.db")
    assert code == 1 and "--yes" in err
    assert not list(shelter.db_path.parent.glob("shelter.db.before-restore-*"))


def test_restore_refuses_while_the_database_is_open(shelter, usb: Path) -> None:  # type: ignore[no-untyped-def]
    """A running `anpi serve` keeps a pooled connection open: pulling the file from under it is refused."""
    db = shelter.db_path
    assert Cli(db)("backup", "--out", usb / "b.db")[0] == 0
    engine = open_shelter_db(db)
    with Session(engine) as s:
        s.exec(select(Evacuee)).all()
    try:
        with pytest.raises(bk.DatabaseInUse):
            bk.restore(db, usb / "b.db")
    finally:
        engine.dispose()
    _unchanged(db, {"渡辺 稔", "ささき けん"})
    bk.restore(db, usb / "b.db")  # once it is closed, it works


def test_restored_laptop_pushes_in_a_new_epoch_without_forks(tmp_path: Path, usb: Path) -> None:
    """Events recorded after a restore must not reuse (device, epoch, seq) numbers the hub already holds."""
    from sync import client, outbox
    from sync.hub import server, store

    hub = server.create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}")
    db = tmp_path / "shelter.db"
    engine = open_shelter_db(db)

    def factory() -> Session:
        return Session(engine, expire_on_commit=False)

    with TestClient(hub, base_url="http://hub") as tc:
        slot = store.create_enrolment(hub.state.engine, "第一小学校")
        client.enroll(factory, "http://hub", slot.code, "第一小学校", http=tc)
        for n in ("一 太郎", "二 次郎"):
            with factory() as s:
                register(s, EvacueeInput(name=n, birth_date="1970-01-01", sex="男"), by="t")
                s.commit()
        assert client.sync_once(factory, http=tc, sleep=lambda _s: None).ok
        info = bk.backup(engine, usb / "b.db")
        with factory() as s:  # after the backup: the hub will hold these numbers too
            register(s, EvacueeInput(name="三 三郎", birth_date="1970-01-01", sex="男"), by="t")
            s.commit()
        assert client.sync_once(factory, http=tc, sleep=lambda _s: None).ok
        with factory() as s:
            dev = outbox.get_device(s)
            old_epoch, old_last = dev.epoch, dev.last_seq
        engine.dispose()

        res = bk.restore(db, info.path)
        assert res.epoch > old_epoch  # provisional (random), until the hub grants one
        engine = open_shelter_db(db)
        with factory() as s:
            register(s, EvacueeInput(name="四 四郎", birth_date="1970-01-01", sex="女"), by="t")
            s.commit()
            new = [e for e in outbox.pending_events(s)]
        assert new and {e.epoch for e in new} == {res.epoch} and min(e.seq for e in new) == 1
        result = client.sync_once(factory, http=tc, sleep=lambda _s: None)
        assert result.ok and not result.forks and result.epoch_bumped, result.as_dict()
        assert store.status(hub.state.engine)["forks"] == 0
        held = {(r[1], r[2]) for r in store.held_events(hub.state.engine)}
        assert (res.epoch, 1) in held and (old_epoch, old_last) in held
        with factory() as s:  # from now on: an epoch the hub handed out
            assert outbox.get_device(s).epoch == res.epoch + 1
            assert not outbox.sync_health(s)["hub_epoch_needed"]
    engine.dispose()
    hub.state.engine.dispose()


def _fake_backup(folder: Path, stem: str, stamp: str, content: bytes) -> Path:
    p = folder / f"{stem}-backup-{stamp}.db"
    p.write_bytes(content)
    (folder / f"{p.name}.sha256").write_text("0" * 64 + f"  {p.name}\n")
    return p


def _scheduler(db: Path, folder: Path, keep: int = 3) -> bk.BackupScheduler:
    engine = open_shelter_db(db)
    return bk.BackupScheduler(db, lambda: Session(engine, expire_on_commit=False), folder, interval_minutes=10,
                              keep=keep)


def test_rotation_keeps_the_newest_and_never_the_last_good_one(shelter, usb: Path) -> None:  # type: ignore[no-untyped-def]
    db = shelter.db_path
    old = [_fake_backup(usb, "shelter", f"2020010{i}T000000Z", b"old") for i in range(1, 5)]
    other = _fake_backup(usb, "otherdb", "20200101T000000Z", b"not ours")
    stale = usb / ".shelter-backup-x.db.01ABC.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    fresh = usb / ".shelter-backup-y.db.01ABD.partial"  # may belong to a backup running right now
    fresh.write_bytes(b"half")

    sched = _scheduler(db, usb, keep=3)
    rec = sched.run_once()
    assert rec.ok and rec.kind == "auto", rec.message
    made = Path(rec.path)
    left = sorted(p.name for p in usb.glob("shelter-backup-*.db"))
    assert left == sorted([old[2].name, old[3].name, made.name])
    assert not (usb / f"{old[0].name}.sha256").exists() and (usb / f"{made.name}.sha256").exists()
    assert other.exists() and fresh.exists() and not stale.exists()

    # a failing run (the database itself is damaged) deletes nothing
    broken = usb.parent / "broken.db"
    data = bytearray(shelter.db_path.read_bytes())
    page_size, root = _page_of(shelter.db_path, "evacuee")
    data[(root - 1) * page_size: (root - 1) * page_size + 8] = b"\xff" * 8
    broken.write_bytes(bytes(data))
    bad = bk.BackupScheduler(broken, sched.session_factory, usb, keep=1)
    rec = bad.run_once()
    # SQLCipher's HMAC on every page refuses the damaged page while copying already, before the check
    assert not rec.ok and ("検査に失敗" in rec.message or "複製できませんでした" in rec.message)
    assert sorted(p.name for p in usb.glob("shelter-backup-*.db")) == left
    # keep=1 after a good run: only the new one stays, never zero
    rec = _scheduler(db, usb, keep=1).run_once()
    assert rec.ok and [p.name for p in usb.glob("shelter-backup-*.db")] == [Path(rec.path).name]


def test_unplugged_stick_is_reported_not_fatal_and_shown_on_the_dashboard(shelter, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    stick = tmp_path / "stick"
    monkeypatch.setenv("ANPI_BACKUP_DIR", str(stick))
    monkeypatch.setenv("ANPI_BACKUP_INTERVAL_MINUTES", "0.02")  # the thread's minimum is one second
    app = create_app(shelter.db_path, auto_lock_seconds=3600)
    settings = app.state.settings
    sched = bk.BackupScheduler(app.state.db_path, lambda: Session(app.state.engine, expire_on_commit=False),
                               settings.backup_dir, interval_minutes=settings.backup_interval_minutes,
                               keep=settings.backup_keep)
    sched.start()
    try:
        deadline = time.monotonic() + 20
        while sched.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched.runs >= 2 and sched._thread is not None and sched._thread.is_alive()  # retried, still running
        assert sched.last is not None and not sched.last.ok
    finally:
        sched.stop()
    client = TestClient(app)
    login(client, "佐藤")
    page = client.get("/dashboard").text
    assert 'id="backup-warning"' in page and "失敗しました" in page and "見つかりません" in page
    assert "正常なバックアップがまだありません" in page
    assert 'id="backup-now"' not in page  # the button is for admins

    client = TestClient(app)
    login(client, "管理")
    stick.mkdir()  # plugged back in
    token = client.get("/api/session").json()["csrf_token"]
    r = client.post("/admin/backup", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard?backup=done"
    page = client.get(r.headers["location"]).text
    assert 'id="backup-message"' in page and 'id="backup-warning"' not in page
    assert str(stick) in page and 'id="last-backup"' in page
    made = list(stick.glob("shelter-backup-*.db"))
    assert len(made) == 1 and bk.check_database(made[0]).problems == []
    with Session(app.state.engine) as s:
        kinds = [r.kind for r in s.exec(select(BackupRecord).where(BackupRecord.ok == True))]  # noqa: E712
    assert kinds == ["manual"]
    app.state.engine.dispose()


def test_dashboard_warns_when_backups_are_old_or_not_configured(shelter) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from app.ids import utcnow

    engine = open_shelter_db(shelter.db_path)
    with Session(engine) as s:
        s.add(BackupRecord(at=utcnow() - timedelta(hours=5), path="/media/usb/a.db", ok=True, kind="auto"))
        s.commit()
        ov = bk.backup_overview(s, folder=Path("/media/usb"), interval_minutes=10)
        assert ov["last_ok"]["folder"] == "/media/usb" and ov["warnings"] == ["最後の正常なバックアップから5時間以上たっています"]
        ov = bk.backup_overview(s, folder=None, interval_minutes=10, now=utcnow() - timedelta(hours=5))
        assert ov["warnings"] == ["自動バックアップが設定されていません（システム担当者にバックアップ先フォルダの設定を依頼してください）"]
    engine.dispose()
