"""The one-file binary (scripts/build-binary → dist/anpi) works on a machine without Python.

Built once per session (reused while newer than every source file), then run with an empty
environment: `--version`, a user created through the binary's own CLI, `serve` on a free port
with a fresh database, one evacuee registered over HTTP exactly as the browser does (session API,
cookie + CSRF header), and the row found in the SQLite file after the server stopped.
Size and start-up time are printed by bench/binary_bench.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from app import __version__
from tests.packaging.binary import empty_env, ensure_binary, run, serving
from app.db_crypto import connect as db_connect

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("binary")]

MAX_MB = 100


@pytest.fixture(scope="session")
def binary() -> Path:
    return ensure_binary()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_version_without_python(binary: Path, home: Path) -> None:
    res = run(binary, home, "--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"anpi {__version__}"


def test_size_and_contents(binary: Path) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    size_mb = binary.stat().st_size / 1e6
    assert size_mb <= MAX_MB, f"{binary} is {size_mb:.1f} MB"
    names = set(CArchiveReader(str(binary)).toc)
    for wanted in ("fonts/ipaexg.ttf", "fonts/IPA_Font_License_Agreement_v1.0.txt",
                   "kiosk_ui/templates/base.html", "kiosk_ui/static/app.js",
                   "app/formats/profiles/anpi.toml", "app/formats/profiles/kihon.toml",
                   "app/migrations/env.py", "app/migrations/versions/0001_initial_schema.py",
                   "pykakasi/data/kanwadict4.db"):
        assert wanted in names, f"{wanted} missing from the binary"
    for unwanted in ("matplotlib", "numpy", "splink", "tkinter", "_tkinter", "pytest", "hypothesis"):
        assert not any(n == unwanted or n.startswith((unwanted + "/", unwanted + ".")) for n in names), unwanted


def test_user_serve_register_stop(binary: Path, home: Path) -> None:
    db = home / "shelter.db"
    res = run(binary, home, "--db", str(db), "user", "add", "--name", "管理", "--role", "admin", "--pin", "9999")
    assert res.returncode == 0, res.stderr

    with serving(binary, home, db) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            # the staff UI's templates and assets come out of the binary
            page = c.get("/switch")
            assert page.status_code == 200 and "管理" in page.text and 'href="/static/app.css"' in page.text
            assert c.get("/static/app.css").status_code == 200 and c.get("/static/app.js").status_code == 200
            c.cookies.clear()
            # as the page script does: GET the session (cookie + CSRF token), log in, then call the API
            csrf = c.get("/api/session").json()["csrf_token"]
            r = c.post("/api/session", json={"user": "管理", "pin": "9999"}, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text
            csrf = r.json()["csrf_token"]
            member = {"name": "髙橋 一郎", "name_kana": "タカハシ イチロウ", "birth_date": "S45.3.1", "sex": "男",
                      "address": "岩手県陸前高田市高田町字館の沖12-3"}
            r = c.post("/api/evacuees/household", json={"members": [member]}, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 201, r.text
            ev_id = r.json()["evacuees"][0]["id"]
            got = c.get(f"/api/evacuees/{ev_id}").json()["evacuee"]
            assert got["name"].replace(" ", "").replace("\u3000", "") == "髙橋一郎"
            assert got["birth_date"] == "1970-03-01"
        assert srv.proc.poll() is None
    assert srv.proc.returncode is not None

    with db_connect(db) as con:
        rows = con.execute("SELECT id, birth_date FROM evacuee").fetchall()
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[0] for r in rows] == [ev_id]
    status = run(binary, home, "--db", str(db), "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["evacuees"]["total"] == 1
    # the binary carries SQLCipher: the file is encrypted, and without the passphrase it says so
    from app.db_crypto import is_plain_sqlite

    assert not is_plain_sqlite(db) and "髙橋".encode() not in db.read_bytes()
    env = {k: v for k, v in empty_env(home).items() if k != "ANPI_PASSPHRASE"}
    res = subprocess.run([str(binary), "--db", str(db), "status"], env=env, cwd=home, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert res.returncode == 1 and "passphrase is needed" in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr


def test_demo_builds_a_database(binary: Path, home: Path) -> None:
    db = home / "demo.db"
    res = run(binary, home, "--db", str(db), "demo", "--residents", "300", "--no-serve")
    assert res.returncode == 0, res.stderr
    assert "管理 三郎  admin  9999" in res.stdout
    status = json.loads(run(binary, home, "--db", str(db), "status", "--json").stdout)
    assert status["snapshot"]["residents"] == 300
    assert status["evacuees"]["total"] >= 20
    # the Japanese font travels inside the binary: a PDF written by it embeds IPAexGothic
    pdf = home / "anpi-list.pdf"
    res = run(binary, home, "--db", str(db), "export", "anpi-list", "--format", "pdf", "--out", str(pdf))
    assert res.returncode == 0, res.stderr
    from pypdf import PdfReader

    page = PdfReader(pdf).pages[0]
    fonts = {f.get_object()["/BaseFont"] for f in page["/Resources"]["/Font"].values()}
    assert any(str(f).endswith("IPAexGothic") for f in fonts), fonts
