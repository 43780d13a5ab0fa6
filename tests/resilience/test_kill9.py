"""Power cuts, simulated with `kill -9` of real `anpi` processes at the worst moments.

- `anpi serve` killed during a burst of registrations over HTTP: after a restart, every
  registration that was answered 2xx is there exactly once (by 受付番号) and nothing is doubled;
- `anpi registry import` killed while its transaction is open (we see its write lock from
  outside): no half snapshot exists, and the same file imports completely afterwards;
- `anpi roster import` killed part-way: the chunks committed before are whole, and importing the
  same file again continues where it stopped;
- `anpi backup` killed while it writes: nothing at the target name (or the previous good copy
  there, unchanged); `anpi serve --backup-dir` killed while its automatic backup writes: every
  file with a backup name in the folder is a complete, verified copy.
Every time `PRAGMA integrity_check` is ok afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.helpers import build_shelter
from app import db_crypto
from app.db_crypto import connect as db_connect

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    # no ANPI_* settings leak in, except the passphrase that opens the (encrypted) shelter databases
    e = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_") or k == "ANPI_PASSPHRASE"}
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["ANPI_SYNC_INTERVAL"] = "3600"
    return e


def anpi(db: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "--db", str(db), *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)


def anpi_bg(db: Path, log: Path, *args: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), *map(str, args)], cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def kill9(proc: subprocess.Popen) -> None:
    assert proc.poll() is None, "the process finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(20)
    assert proc.returncode == -signal.SIGKILL


def integrity(db: Path) -> list[str]:
    con = db_connect(db)  # opening replays the committed part of the -wal, as a restart does
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")] + \
               [f"fk {r}" for r in con.execute("PRAGMA foreign_key_check")]
    finally:
        con.close()


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = db_connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_for_write_lock(db: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `proc` holds SQLite's write lock, i.e. its import transaction is open and not committed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the import finished before it was seen running"
        con = db_connect(db, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
        except db_crypto.OperationalError as exc:
            if "locked" in str(exc):
                return
            raise
        finally:
            con.close()
        time.sleep(0.01)
    raise AssertionError("the import never took the write lock")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`anpi serve` as its own process on a free loopback port."""

    def __init__(self, db: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = anpi_bg(db, log, "serve", "--port", str(self.port))
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "anpi serve did not answer /healthz"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def logged_in(url: str, name: str = "佐藤", pin: str = "1234") -> tuple[httpx.Client, str]:
    """A client logged in through the session API, and its CSRF token (as the intake script does)."""
    c = httpx.Client(base_url=url, timeout=30)
    token = c.get("/api/session").json()["csrf_token"]
    r = c.post("/api/session", json={"user": name, "pin": pin}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def household(key: str, i: int) -> dict[str, Any]:
    return {"members": [{"name": f"避難 {i}郎", "name_kana": "ひなん", "birth_date": "1980-01-01", "sex": "男",
                         "external_key": key}], "confirm_duplicates": True}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A registry big enough that its import takes seconds, and a roster of 1,200 people."""
    from fixtures.generate import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data"), residents=40_000, evacuees=1_200, seed=7)


def test_kill9_serve_during_registration_burst(tmp_path: Path) -> None:
    sh = build_shelter(tmp_path, evacuees=False)
    log = tmp_path / "serve.log"
    server = Server(sh.db_path, log)
    answered: list[str] = []  # 受付番号 whose registration got a 2xx
    sent: list[str] = []
    odd: list[tuple[str, int]] = []
    stop = threading.Event()

    def burst() -> None:
        c, token = logged_in(server.url)
        try:
            i = 0
            while not stop.is_set():
                key = f"K{i:05d}"
                sent.append(key)
                try:
                    r = c.post("/api/evacuees/household", json=household(key, i), headers={"X-CSRF-Token": token})
                except httpx.TransportError:
                    return  # the server died under us
                if 200 <= r.status_code < 300:
                    answered.append(key)
                else:
                    odd.append((key, r.status_code))
                i += 1
        finally:
            c.close()

    t = threading.Thread(target=burst, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 120
        while len(answered) < 40 and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.01)
        assert len(answered) >= 40, (answered, odd, log.read_text(errors="replace")[-2000:])
        kill9(server.proc)  # mid-burst: the thread is sending the next household right now
        t.join(30)
    finally:
        stop.set()
        server.stop()
    assert not odd, odd
    assert integrity(sh.db_path) == ["ok"]

    server = Server(sh.db_path, log)  # restart on the same file
    try:
        c, token = logged_in(server.url, "管理", "9999")
        try:
            listed = [e["external_key"] for e in c.get("/api/evacuees", params={"limit": 5000}).json()["evacuees"]]
            r = c.post("/api/evacuees/household", json=household("AFTER", 99999), headers={"X-CSRF-Token": token})
            assert r.status_code == 201, r.text
        finally:
            c.close()
    finally:
        server.stop()
    counts = dict(query(sh.db_path, "SELECT external_key, COUNT(*) FROM evacuee GROUP BY external_key"))
    assert all(counts.get(k) == 1 for k in answered), "a registration answered 2xx is missing or doubled"
    assert max(counts.values()) == 1
    assert set(counts) - {"AFTER"} <= set(sent)
    # at most the one request in flight at the kill may have committed without its answer
    assert len(set(counts) - set(answered) - {"AFTER"}) <= 1
    assert sorted(listed) == sorted(set(counts) - {"AFTER"})
    # each registration is whole: its check-in and its sync events committed with it
    assert query(sh.db_path, "SELECT COUNT(*) FROM evacuee e WHERE NOT EXISTS "
                             "(SELECT 1 FROM stayevent s WHERE s.evacuee_id = e.id)") == [(0,)]
    assert integrity(sh.db_path) == ["ok"]


def test_kill9_during_registry_import_leaves_no_half_snapshot(tmp_path: Path, dataset) -> None:  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path, evacuees=False)  # migrated, one small snapshot already there
    before = json.loads(anpi(sh.db_path, "registry", "list", "--json").stdout)
    residents_before = query(sh.db_path, "SELECT COUNT(*) FROM resident")
    proc = anpi_bg(sh.db_path, tmp_path / "import.log", "registry", "import", dataset.registry_path,
                   "--as-of", "2026-10-31")
    wait_for_write_lock(sh.db_path, proc)
    time.sleep(0.6)  # well inside the 40,000 rows (the whole import takes seconds)
    kill9(proc)
    assert integrity(sh.db_path) == ["ok"]
    after = anpi(sh.db_path, "registry", "list", "--json")
    assert after.returncode == 0 and json.loads(after.stdout) == before
    assert query(sh.db_path, "SELECT COUNT(*) FROM resident") == residents_before
    again = anpi(sh.db_path, "registry", "import", dataset.registry_path, "--as-of", "2026-10-31")
    assert again.returncode == 0, again.stderr
    assert "40000 residents" in again.stdout
    assert query(sh.db_path, "SELECT COUNT(*) FROM resident WHERE snapshot_id = "
                             "(SELECT MAX(id) FROM registrysnapshot)") == [(40_000,)]
    assert integrity(sh.db_path) == ["ok"]


def test_kill9_during_roster_import_keeps_whole_chunks_and_continues(tmp_path: Path, dataset) -> None:  # type: ignore[no-untyped-def]
    """A roster is imported in short chunks (issue 18): a kill keeps the chunks committed before it,
    each evacuee whole (check-in, match decision and sync events with it), and the same import continues."""
    sh = build_shelter(tmp_path, evacuees=False)
    events_before = query(sh.db_path, "SELECT COUNT(*) FROM outbox_event")[0][0]
    proc = anpi_bg(sh.db_path, tmp_path / "roster.log", "roster", "import", dataset.roster_path)
    wait_for_write_lock(sh.db_path, proc)
    deadline = time.monotonic() + 120  # kill once the first chunk is committed (1,200 rows take seconds)
    while time.monotonic() < deadline and proc.poll() is None:
        rows = query(sh.db_path, "SELECT done_rows FROM rosterimport")
        if rows and rows[0][0] > 0:
            break
        time.sleep(0.05)
    kill9(proc)
    assert integrity(sh.db_path) == ["ok"]
    [(done, accepted, rejected, dups, status)] = query(
        sh.db_path, "SELECT done_rows, accepted, rejected, duplicates, status FROM rosterimport")
    assert status == "running" and 0 < done < dataset.evacuees
    [(n,)] = query(sh.db_path, "SELECT COUNT(*) FROM evacuee")
    assert n == accepted and accepted + rejected + dups == done
    assert query(sh.db_path, "SELECT COUNT(*) FROM stayevent") == [(n,)]
    # each evacuee whole: registration, check-in and the engine's decision, all in the chunk's transaction
    assert query(sh.db_path, "SELECT COUNT(DISTINCT evacuee_id) FROM matchdecision") == [(n,)]
    assert query(sh.db_path, "SELECT COUNT(*) FROM outbox_event")[0][0] - events_before == 3 * n
    again = anpi(sh.db_path, "roster", "import", dataset.roster_path)
    assert again.returncode == 0, again.stderr
    assert f"continued after row {done}" in again.stdout
    accepted = int(again.stdout.split()[0])
    [(dups,)] = query(sh.db_path, "SELECT duplicates FROM rosterimport")
    assert accepted + dups == dataset.evacuees
    assert query(sh.db_path, "SELECT COUNT(*), COUNT(DISTINCT roster_line) FROM evacuee") == [(accepted, accepted)]
    assert query(sh.db_path, "SELECT status, done_rows FROM rosterimport") == [("done", dataset.evacuees)]
    assert integrity(sh.db_path) == ["ok"]


def _kill_backup_midway(db: Path, out: Path, log: Path, attempts: int = 5) -> bool:
    """Start `anpi backup`, SIGKILL it as soon as its temporary file appears. True if it was killed mid-write."""
    for _ in range(attempts):
        proc = anpi_bg(db, log, "backup", "--out", out)
        while proc.poll() is None:
            if any(out.parent.glob(f".{out.name}.*.partial")):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(20)
                return proc.returncode == -signal.SIGKILL
            time.sleep(0.002)
        proc.wait()  # too quick to catch this time: try again
    return False


def test_kill9_during_backup_leaves_nothing_at_the_target(tmp_path: Path, dataset) -> None:  # type: ignore[no-untyped-def]
    from app.services.backup import check_database, file_sha256, read_sidecar

    sh = build_shelter(tmp_path)
    assert anpi(sh.db_path, "registry", "import", dataset.registry_path).returncode == 0  # a database worth copying
    usb = tmp_path / "usb"
    usb.mkdir()
    out = usb / "shelter-backup.db"
    assert _kill_backup_midway(sh.db_path, out, tmp_path / "backup.log")
    assert not out.exists() and not Path(f"{out}.sha256").exists()
    assert integrity(sh.db_path) == ["ok"]

    done = anpi(sh.db_path, "backup", "--out", out)  # a good copy at the target name …
    assert done.returncode == 0, done.stderr
    good_sha = file_sha256(out)
    assert _kill_backup_midway(sh.db_path, out, tmp_path / "backup.log")  # … survives a killed overwrite
    assert file_sha256(out) == good_sha and read_sidecar(out) == good_sha
    assert check_database(out).problems == []
    assert integrity(sh.db_path) == ["ok"]
    restored = anpi(tmp_path / "other.db", "restore", out, "--yes")
    assert restored.returncode == 0, restored.stderr
    assert query(tmp_path / "other.db", "SELECT COUNT(*) FROM resident") == query(sh.db_path, "SELECT COUNT(*) FROM resident")


def test_kill9_serve_while_it_backs_up_automatically(tmp_path: Path, dataset) -> None:  # type: ignore[no-untyped-def]
    """`anpi serve --backup-dir`: backups every second onto the "stick", killed while one is being written."""
    from app.services.backup import check_database, file_sha256, read_sidecar

    sh = build_shelter(tmp_path)
    assert anpi(sh.db_path, "registry", "import", dataset.registry_path).returncode == 0
    stick = tmp_path / "stick"
    stick.mkdir()
    log = tmp_path / "serve.log"
    port = free_port()
    proc = anpi_bg(sh.db_path, log, "serve", "--port", str(port), "--backup-dir", stick,
                   "--backup-interval", "0.001", "--backup-keep", "2")  # as often as it allows: once a second
    try:
        deadline = time.monotonic() + 120
        killed_mid_write = False
        while time.monotonic() < deadline and proc.poll() is None:
            good = query(sh.db_path, "SELECT COUNT(*) FROM backuprecord WHERE ok AND kind = 'auto'")[0][0] \
                if sh.db_path.exists() else 0
            if good >= 3 and any(stick.glob(".*.partial")):
                kill9(proc)
                killed_mid_write = True
                break
            time.sleep(0.005)
        assert killed_mid_write, log.read_text(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    named = sorted(stick.glob("shelter-backup-*.db"))
    listing = sorted(p.name for p in stick.iterdir())
    assert 1 <= len(named) <= 3, listing  # keep=2, plus at most the one that was being renamed into place
    for p in named:  # whatever carries a backup name is a complete, verified copy
        assert check_database(p).problems == [], (p, check_database(p).problems)
        assert read_sidecar(p) in (None, file_sha256(p)), (p, listing)
    assert integrity(sh.db_path) == ["ok"]
    recorded = {r[0] for r in query(sh.db_path, "SELECT path FROM backuprecord WHERE ok")}
    # the newest may have lost only its record
    assert {str(p) for p in named} - recorded <= {str(named[-1])}, (listing, recorded)
