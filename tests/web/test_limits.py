"""Login throttling per client and body limits on every upload route (issue 12, item 8).

Throttling runs against the real app under uvicorn on loopback, with clients on different source
addresses (127.0.0.2, 127.0.0.3: Linux routes all of 127/8 to lo). The memory test runs
`anpi serve` as its own process and reads its RSS from /proc while a 50 MB body streams in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.web.helpers import STAFF, build_shelter, csrf_of, login, shelter_app
from tests.web.server import free_port, serve

MB = 1024 * 1024


def _client(base: str, source: str) -> httpx.Client:
    return httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=source), timeout=60,
                        follow_redirects=False)


def _try(c: httpx.Client, name: str, pin: str) -> httpx.Response:
    page = c.get("/switch").text
    uid = re.search(r'name="user_id" value="([^"]+)"[^>]*>\s*<span class="tile-num"[^>]*>[^<]*</span>\s*'
                    r'<span class="tile-name">' + re.escape(name) + "<", page).group(1)
    return c.post("/switch", data={"csrf_token": csrf_of(page), "user_id": uid, "pin": pin})


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path, evacuees=False)


def test_one_client_cannot_lock_an_account_for_everybody(shelter) -> None:  # type: ignore[no-untyped-def]
    with serve(shelter.db_path) as base, _client(base, "127.0.0.2") as attacker, _client(base, "127.0.0.3") as staff:
        for _ in range(5):
            assert _try(attacker, "佐藤", "0000").status_code == 401
        r = _try(attacker, "佐藤", "1234")
        assert r.status_code == 429 and "ロック" in r.text  # locked for this client, even with the right PIN
        r = _try(staff, "佐藤", "1234")  # 佐藤 at another laptop logs in
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"


def test_a_client_guessing_across_accounts_is_stopped(shelter) -> None:  # type: ignore[no-untyped-def]
    names = [n for n, (_, pin) in STAFF.items() if pin]
    with serve(shelter.db_path) as base, _client(base, "127.0.0.4") as attacker, _client(base, "127.0.0.5") as staff:
        tries = 0
        while tries < 21:  # four wrong PINs per account (never the per-account lock), over every account
            for name in names:
                if tries < 21:
                    assert _try(attacker, name, "0000" if tries % 2 else "0001").status_code in (401, 429)
                    tries += 1
        r = _try(attacker, "本部", "2222")
        assert r.status_code == 429 and "この端末" in r.text  # the whole client is blocked for a while
        assert _try(staff, "本部", "2222").status_code == 303  # nobody else is


def _multipart(total: int, boundary: str = "anpi-limit-test") -> Iterator[bytes]:
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"meibo.csv\"\r\n"
           "Content-Type: text/csv\r\n\r\n氏名,生年月日\r\n").encode()
    one = "岩手 太郎,S50.1.1\r\n".encode()
    block = one * 4096
    sent = 0
    while sent < total:
        chunk = block if total - sent >= len(block) else one * max(1, (total - sent) // len(one))
        sent += len(chunk)
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


@pytest.fixture
def served(shelter, tmp_path: Path) -> Iterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """`anpi serve` in its own process with a 10 MB roster limit."""
    port = free_port()
    env = {**os.environ, "ANPI_ROSTER_UPLOAD_MAX_MB": "10", "ANPI_SYNC_INTERVAL": "3600"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(shelter.db_path), "serve",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "anpi serve did not start"
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(20)


def test_roster_upload_is_cut_off_while_streaming(served) -> None:  # type: ignore[no-untyped-def]
    base, pid = served
    with httpx.Client(base_url=base, timeout=120, follow_redirects=False) as c:
        page = c.get("/switch").text
        uid = re.search(r'name="user_id" value="([^"]+)"[^>]*>\s*<span class="tile-num"[^>]*>[^<]*</span>\s*'
                        r'<span class="tile-name">佐藤<', page).group(1)
        assert c.post("/switch", data={"csrf_token": csrf_of(page), "user_id": uid, "pin": "1234"}).status_code == 303
        token = c.get("/api/session").json()["csrf_token"]
        headers = {"X-CSRF-Token": token, "Content-Type": "multipart/form-data; boundary=anpi-limit-test"}
        ok = c.post("/api/roster/import", content=b"".join(_multipart(1000)), headers=headers)
        assert ok.status_code == 200, ok.text  # a small roster still goes in
        before = _rss_kb(pid)
        r = c.post("/api/roster/import", content=_multipart(50 * MB), headers=headers)  # chunked: no length
        assert r.status_code == 413, r.text[:300]
        assert "大きすぎます" in r.json()["detail_ja"] and r.json()["limit_bytes"] == 10 * MB
        grown = _rss_kb(pid) - before
        assert grown < 8 * 1024, f"server RSS grew by {grown} kB for a refused 50 MB body"
        # a declared length over the limit is refused before the body is read; the server stays usable
        r = c.post("/api/roster/import", content=b"".join(_multipart(20 * MB)), headers=headers)
        assert r.status_code == 413
        assert c.get("/api/status").status_code == 200


def test_every_upload_route_has_a_limit(shelter, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Shelter screens answer 413 in Japanese; JSON routes in JSON; small forms have a limit too."""
    for name, value in (("ANPI_ROSTER_UPLOAD_MAX_MB", "1"), ("ANPI_REGISTRY_UPLOAD_MAX_MB", "1"),
                        ("ANPI_PFIF_UPLOAD_MAX_MB", "1"), ("ANPI_FORM_MAX_MB", "0.5")):
        monkeypatch.setenv(name, value)
    big = b"x" * (2 * MB)
    for app in shelter_app(shelter.db_path):
        c = TestClient(app)
        login(c, "管理")
        token = csrf_of(c.get("/dashboard").text)
        for path in ("/roster/import", "/admin/registry", "/desk/sought/import", "/intake"):
            r = c.post(path, files={"file": ("big.csv", big, "text/csv")}, data={"csrf_token": token})
            assert r.status_code == 413, (path, r.status_code)
            assert "大きすぎます" in r.text and 'lang="ja"' in r.text, path
        for path in ("/api/roster/import", "/api/registry/import", "/api/users", "/api/session"):
            r = c.post(path, content=big, headers={"X-CSRF-Token": token, "Content-Type": "application/octet-stream"})
            assert r.status_code == 413 and "大きすぎます" in r.json()["detail_ja"], path
        assert c.get("/dashboard").status_code == 200
