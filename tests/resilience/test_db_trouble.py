"""A busy or full database answers staff in Japanese, with Retry-After, never a bare 500.

Real `anpi serve` processes on real SQLite files:
- another process holds SQLite's write lock (a second connection in BEGIN IMMEDIATE, as a long
  `anpi roster import` does): a registration answers 503 JSON within the (lowered) busy timeout,
  while pages that only read answer promptly from the query-only pool; a look at personal data
  waits only for its audit entry and is refused (503) rather than shown unaudited;
- the disk holding the database is full (a small tmpfs, filled): writes answer 507
  「ディスクの空きがありません」 (JSON for the API, a Japanese page for screens), the dashboard
  still opens, looks that must be audited are refused; once space is freed the same process
  registers again, without a restart, and nothing refused was half-written.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.resilience.test_kill9 import ROOT, env, free_port, household, integrity, logged_in, query
from tests.web.helpers import build_shelter, csrf_of, login
from app.db_crypto import connect as db_connect

pytestmark = pytest.mark.slow

BUSY_TIMEOUT_S = 2.0
BUSY_JA = "混み合っています。しばらくしてからもう一度お試しください"
FULL_JA = "ディスクの空きがありません"


class Serve:
    """`anpi serve` as its own process with extra ANPI_* settings."""

    def __init__(self, db: Path, log: Path, **settings: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        e = env() | settings
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), "serve", "--port",
                                      self.url.rsplit(":", 1)[1]], cwd=ROOT, env=e, stdout=subprocess.DEVNULL,
                                     stderr=log.open("ab"))
        self.log = log
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


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """Starts `anpi serve` processes that are stopped at teardown, also when the test failed."""
    started: list[Serve] = []

    def start(db: Path, **settings: str) -> Serve:
        started.append(Serve(db, tmp_path / "serve.log", **settings))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def page_client(url: str, name: str = "佐藤") -> httpx.Client:
    """A browser-like client logged in through the 交代 screen (cookies, CSRF in the form)."""
    c = httpx.Client(base_url=url, timeout=30)
    login(c, name)
    return c


def timed(fn, *args, **kw) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t0


def test_a_held_write_lock_answers_503_json_and_reads_stay_prompt(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path)
    server = serve(sh.db_path, ANPI_BUSY_TIMEOUT_SECONDS=str(BUSY_TIMEOUT_S))
    api, token = logged_in(server.url)
    pages = page_client(server.url, "管理")
    holder = db_connect(sh.db_path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")  # what a long import in another process does
        result: dict[str, object] = {}

        def register() -> None:
            result["r"], result["s"] = timed(api.post, "/api/evacuees/household", json=household("LOCKED", 1),
                                             headers={"X-CSRF-Token": token})

        writer = threading.Thread(target=register)
        writer.start()
        time.sleep(0.2)  # the registration is now waiting for the lock
        for path in ("/healthz", "/dashboard", "/api/status", "/switch"):
            r, took = timed(pages.get, path)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            assert took < 1.0, f"GET {path} waited {took:.2f}s behind the held write lock"
        writer.join(30)
        r, took = result["r"], result["s"]
        assert isinstance(r, httpx.Response) and isinstance(took, float)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["detail_ja"] == BUSY_JA and r.json()["reason"] == "busy"
        assert int(r.headers["Retry-After"]) > 0
        assert BUSY_TIMEOUT_S - 0.5 <= took < BUSY_TIMEOUT_S + 3, took

        # a screen that shows people must write its audit entry first: refused in Japanese, not shown unaudited
        r = pages.get("/roster")
        assert r.status_code == 503 and "Retry-After" in r.headers
        assert r.headers["content-type"].startswith("text/html")
        assert BUSY_JA in r.text and "渡辺" not in r.text and "Internal Server Error" not in r.text
    finally:
        holder.rollback()
        holder.close()
    try:
        # the lock released: the same process registers and shows again
        r = api.post("/api/evacuees/household", json=household("AFTER", 2), headers={"X-CSRF-Token": token})
        assert r.status_code == 201, r.text
        assert pages.get("/roster").status_code == 200
        # a short write by another process: the look waits for it, then answers
        holder = db_connect(sh.db_path, timeout=0, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        releaser = threading.Timer(0.5, lambda: (holder.rollback(), holder.close()))
        releaser.start()
        r = pages.get("/roster")
        releaser.join()
        assert r.status_code == 200 and "避難 2郎" in r.text
    finally:
        api.close()
        pages.close()
        server.stop()
    assert "Traceback" not in server.log.read_text(errors="replace")
    assert query(sh.db_path, "SELECT external_key FROM evacuee WHERE external_key IN ('LOCKED', 'AFTER')") == \
        [("AFTER",)]
    assert integrity(sh.db_path) == ["ok"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs: small enough to fill in a moment."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root / CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the file system says it is full."""
    filler = folder / "filler.bin"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_a_full_disk_answers_507_in_japanese_and_recovers_without_restart(small_disk: Path, serve) -> None:  # type: ignore[no-untyped-def]
    sh = build_shelter(small_disk)
    server = serve(sh.db_path, ANPI_DISK_WARN_MB="500")
    api, token = logged_in(server.url)
    pages = page_client(server.url, "管理")
    try:
        dash = pages.get("/dashboard")  # a 6 MB disk is below the 500 MB warning
        assert dash.status_code == 200 and 'id="disk-free"' in dash.text and 'id="disk-warning"' in dash.text
        r = api.post("/api/evacuees/household", json=household("BEFORE", 1), headers={"X-CSRF-Token": token})
        assert r.status_code == 201, r.text
        with db_connect(sh.db_path) as con:  # an empty -wal: the next write must take new space
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(small_disk)

        statuses = []
        for i in range(5):  # every write is refused the same way, none becomes a 500
            r = api.post("/api/evacuees/household", json=household(f"FULL{i}", 10 + i), headers={"X-CSRF-Token": token})
            statuses.append(r.status_code)
            assert r.status_code == 507, r.text
            assert r.headers["content-type"].startswith("application/json") and int(r.headers["Retry-After"]) > 0
            assert r.json()["detail_ja"].startswith(FULL_JA) and r.json()["reason"] == "disk_full"
        page = pages.get("/intake")
        intake = pages.post("/intake", data={"csrf_token": csrf_of(page.text), "m-0-name": "満杯 太郎",
                                             "m-0-name_kana": "まんぱい たろう", "m-0-birth_date": "1980-01-01",
                                             "m-0-sex": "男", "confirm_duplicates": "1"})
        assert intake.status_code == 507, intake.text[:300]  # the staff screen: a Japanese page
        assert intake.headers["content-type"].startswith("text/html") and "Retry-After" in intake.headers
        assert FULL_JA in intake.text and "Internal Server Error" not in intake.text
        dash = pages.get("/dashboard")  # reads that show nobody keep working
        assert dash.status_code == 200 and 'id="disk-warning"' in dash.text
        st = api.get("/api/status")
        assert st.status_code == 200 and st.json()["disk"]["low"] is True and st.json()["disk"]["free_bytes"] < 1 << 20
        looked = pages.get("/roster")  # a look must be audited first: refused while the log cannot grow
        assert looked.status_code == 507 and FULL_JA in looked.text and "避難 1郎" not in looked.text
        assert api.get("/api/evacuees").status_code == 507
        with httpx.Client(base_url=server.url, timeout=30) as fresh:  # a login is audited: refused, in Japanese
            refused = login(fresh, "鈴木", expect=507)
            assert FULL_JA in refused.text and "Retry-After" in refused.headers

        filler.unlink()  # space comes back: the same process works again
        r = api.post("/api/evacuees/household", json=household("AFTER", 99), headers={"X-CSRF-Token": token})
        assert r.status_code == 201, r.text
        looked = pages.get("/roster")
        assert looked.status_code == 200 and "避難 99郎" in looked.text and "避難 1郎" in looked.text
    finally:
        api.close()
        pages.close()
        server.stop()
    assert "Traceback" not in server.log.read_text(errors="replace")
    keys = {k for (k,) in query(sh.db_path, "SELECT external_key FROM evacuee")}
    assert {"BEFORE", "AFTER"} <= keys and not any(k.startswith("FULL") for k in keys if k)
    assert integrity(sh.db_path) == ["ok"]
    res = subprocess.run([sys.executable, "-m", "app.cli", "--db", str(sh.db_path), "audit", "verify"], cwd=ROOT,
                         env=env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr

