"""Encryption at rest (issue 12 item 4): a shelter database or a backup taken from the disk gives
nothing away without the passphrase, and a missing or wrong passphrase is one clear line.

Real files, the real CLI in-process; the raw bytes of every file SQLite writes (-wal, -shm,
-journal) are searched for values we know are inside.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app import db_crypto
from app.db import open_shelter_db
from app.models import Staff
from app.services import backup as bk
from app.services.roster import EvacueeInput, register
from sync import outbox
from tests.conftest import TEST_PASSPHRASE, Cli
from tests.web.helpers import build_shelter

FLAGGED_ADDRESS = "岩手県陸前高田市米崎町2-1"  # 山﨑 花, under 閲覧制限 in tests/web/helpers.py
NAMES = ("山﨑", "髙橋", "渡辺 稔")


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    with Session(engine) as s:  # the laptop's identity, as enrolment creates it
        outbox.ensure_device(s)
        s.commit()
    engine.dispose()
    return sh


def _secrets(db: Path) -> list[bytes]:
    """What must not be readable: names, the flagged address, the signing key, a PIN hash."""
    con = db_crypto.connect(db)
    try:
        seed_b64 = con.execute("SELECT signing_key FROM sync_device").fetchone()[0]
        pin_hash = con.execute("SELECT pin_hash FROM staff WHERE pin_hash IS NOT NULL").fetchone()[0]
    finally:
        con.close()
    values = [n.encode() for n in NAMES] + [FLAGGED_ADDRESS.encode(), seed_b64.encode(),
                                           base64.b64decode(seed_b64), pin_hash.encode()[-24:]]
    return values + [v.encode("utf-16-le") for v in (*NAMES, FLAGGED_ADDRESS)]


def _files_of(path: Path) -> list[Path]:
    return [p for p in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))) if p.exists()]


def _assert_nothing_readable(path: Path, secrets: list[bytes]) -> None:
    files = _files_of(path)
    assert files
    for f in files:
        raw = f.read_bytes()
        assert not raw.startswith(db_crypto.SQLITE_MAGIC), f"{f.name} is a plain SQLite file"
        for value in secrets:
            assert value not in raw, f"{value!r} readable in {f.name}"


def test_database_wal_and_backup_reveal_nothing_without_the_passphrase(shelter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = shelter.db_path
    secrets = _secrets(db)
    # the plain-text control: the same search does find them in a plain SQLite export of the data
    plain = tmp_path / "plain.db"
    con = db_crypto.connect(db)
    con.execute("ATTACH DATABASE ? AS plain KEY ''", (str(plain),))
    con.execute("SELECT sqlcipher_export('plain')")
    con.execute("DETACH DATABASE plain")
    con.close()
    assert FLAGGED_ADDRESS.encode() in plain.read_bytes()

    # while the service is running: committed rows sit in the -wal
    engine = open_shelter_db(db)
    try:
        with Session(engine) as s:
            register(s, EvacueeInput(name="東海林 秘子", birth_date="1970-01-01", sex="女", address="米崎町9-9"), by="t")
            s.commit()
        assert Path(f"{db}-wal").stat().st_size > 0
        _assert_nothing_readable(db, [*secrets, "東海林".encode(), "米崎町9-9".encode()])
    finally:
        engine.dispose()
    _assert_nothing_readable(db, secrets)

    out = tmp_path / "usb.db"
    code, _, err = Cli(db)("backup", "--out", out)
    assert code == 0, err
    _assert_nothing_readable(out, [*secrets, "東海林".encode()])
    # inside the backup the signing key is sealed once more (not the live one, even with the key)
    con = db_crypto.connect(out)
    sealed = con.execute("SELECT signing_key FROM sync_device").fetchone()[0]
    con.close()
    assert db_crypto.is_sealed(sealed) and secrets[4].decode() not in sealed
    with pytest.raises(sqlite3.DatabaseError):  # plain SQLite cannot read either file
        sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master").fetchall()


def test_start_up_without_the_passphrase_says_so_in_one_line(shelter, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(db_crypto.PASSPHRASE_ENV)
    code, out, err = Cli(shelter.db_path)("status")
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "passphrase is needed" in err and "ANPI_PASSPHRASE" in err, err


def test_wrong_passphrase_says_so_in_one_line(shelter, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(db_crypto.PASSPHRASE_ENV, "not the passphrase")
    for args in (("status",), ("user", "list"), ("backup", "--out", shelter.db_path.with_name("b.db"))):
        code, _, err = Cli(shelter.db_path)(*args)
        assert code == 1 and err.strip().count("\n") == 0, err
        assert "wrong passphrase" in err, err
    assert not shelter.db_path.with_name("b.db").exists()


def test_restore_needs_the_passphrase_of_the_backup(shelter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    db = shelter.db_path
    out = tmp_path / "b.db"
    assert Cli(db)("backup", "--out", out)[0] == 0
    con = db_crypto.connect(db)
    live_key = con.execute("SELECT signing_key FROM sync_device").fetchone()[0]
    con.close()

    monkeypatch.setenv(db_crypto.PASSPHRASE_ENV, "someone else's guess")
    code, _, err = Cli(tmp_path / "new.db")("restore", out, "--yes")
    assert code == 1 and "wrong passphrase" in err and "nothing was changed" in err, err
    assert err.strip().count("\n") == 0
    monkeypatch.delenv(db_crypto.PASSPHRASE_ENV)
    code, _, err = Cli(tmp_path / "new.db")("restore", out, "--yes")
    assert code == 1 and "passphrase is needed" in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "new.db").exists()

    monkeypatch.setenv(db_crypto.PASSPHRASE_ENV, TEST_PASSPHRASE)
    code, _, err = Cli(db)("restore", out, "--yes")
    assert code == 0, err
    con = db_crypto.connect(db)
    try:  # the laptop keeps its identity: the sealed key is opened again on the way in
        assert con.execute("SELECT signing_key FROM sync_device").fetchone()[0] == live_key
    finally:
        con.close()
    _assert_nothing_readable(db, [FLAGGED_ADDRESS.encode(), live_key.encode()])


def _plain_database(path: Path) -> None:
    """A database as an Anpi from before encryption wrote it (plain SQLite, WAL, data in it)."""
    engine = open_shelter_db(path, key=None)
    with Session(engine) as s:
        register(s, EvacueeInput(name="旧版 太郎", birth_date="1950-02-03", sex="男", address="高田町7"), by="t")
        s.commit()
    engine.dispose()
    assert db_crypto.is_plain_sqlite(path) and "旧版 太郎".encode() in path.read_bytes()


def test_an_old_plain_database_is_encrypted_in_place_on_first_open(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _plain_database(db)
    code, out, err = Cli(db)("status", "--json")
    assert code == 0, err
    assert "was not encrypted; it is now" in err
    _assert_nothing_readable(db, ["旧版 太郎".encode(), "高田町7".encode()])
    assert not list(tmp_path.glob(".*.partial"))
    con = db_crypto.connect(db)
    assert con.execute("SELECT name_raw FROM evacuee").fetchone()[0] == "旧版 太郎"
    con.close()


def test_an_old_plain_backup_is_restored_encrypted(tmp_path: Path) -> None:
    old = tmp_path / "old-backup.db"
    _plain_database(old)
    con = sqlite3.connect(old)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    db = tmp_path / "shelter.db"
    code, _, err = Cli(db)("restore", old, "--yes")
    assert code == 0, err
    _assert_nothing_readable(db, ["旧版 太郎".encode()])
    assert db_crypto.is_plain_sqlite(old)  # the file on the stick is the admin's to destroy, not ours


def test_demo_starts_without_a_prompt_and_prints_its_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(db_crypto.PASSPHRASE_ENV)
    db = tmp_path / "anpi-demo.db"
    code, out, err = Cli(db)("demo", "--no-serve", "--residents", "60")
    assert code == 0, err
    assert "demo passphrase: anpi-demo" in out
    assert not db_crypto.is_plain_sqlite(db)
    con = db_crypto.connect(db, db_crypto.key_for(db, "anpi-demo"))
    assert con.execute("SELECT count(*) FROM resident").fetchone()[0] == 60
    con.close()


def test_passphrase_comes_from_the_environment_before_any_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different passphrases give two different keys for the same salt; the same one the same key."""
    db = tmp_path / "x.db"
    engine = open_shelter_db(db)
    engine.dispose()
    salt = db_crypto.file_header(db)
    assert db_crypto.key_for(db) == db_crypto.raw_key(db_crypto.derive_key(TEST_PASSPHRASE, salt), salt)
    monkeypatch.setenv(db_crypto.PASSPHRASE_ENV, "other")
    assert db_crypto.key_for(db) != db_crypto.key_for(db, TEST_PASSPHRASE)
    with Session(open_shelter_db(tmp_path / "y.db")) as s:  # a new file is simply created under it
        assert s.exec(select(Staff)).all() == []


def _run_on_a_terminal(args: list[str], typed: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the real `anpi` on a pseudo-terminal (its controlling tty) and type lines when it asks."""
    import os
    import pty
    import sys
    import select
    import signal
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr and /dev/tty are the terminal
        os.execve(sys.executable, [sys.executable, "-m", "app.cli", *args], env)
    out, answers, deadline, answered_at = b"", list(typed), time.monotonic() + 60, -1
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 1.0)[0]:  # nothing to read: look at the deadline again
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
        # a new prompt: text after the last answer that ends in ":" (not the newline echoed after an answer,
        # which would send the next answer before the child turned echo off and flushed the terminal)
        if answers and out[max(answered_at, 0):].strip().endswith(b":"):
            os.write(fd, answers.pop(0).encode() + b"\n")
            answered_at = len(out)
    else:  # never hang the suite: a child still waiting after the deadline fails the test
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_a_terminal_asks_for_the_passphrase(tmp_path: Path) -> None:
    import os

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != db_crypto.PASSPHRASE_ENV}
    env["PYTHONPATH"] = str(root)
    db = tmp_path / "tty.db"
    code, out = _run_on_a_terminal(["--db", str(db), "status"], ["secret words", "secret words"], env)
    assert code == 0, out
    assert "new passphrase for" in out and "the same passphrase again" in out and "secret words" not in out
    code, out = _run_on_a_terminal(["--db", str(db), "status"], ["wrong words"], env)
    assert code == 1 and "wrong passphrase" in out, out
    con = db_crypto.connect(db, db_crypto.key_for(db, "secret words"))
    con.close()


def test_the_hub_parses_a_registry_without_any_shelter_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub checks a registry file in a temporary shelter database keyed in memory only."""
    from app.hub_registry import parse_for_hub
    from tests.conftest import write_csv
    from tests.web.helpers import HEADER, REGISTRY

    monkeypatch.delenv(db_crypto.PASSPHRASE_ENV)
    parsed = parse_for_hub(write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY]))
    assert len(parsed.records) == len(REGISTRY)
