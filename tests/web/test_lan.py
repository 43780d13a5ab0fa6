"""`anpi serve --lan` over real HTTPS (issue 15): plain HTTP gets no page, a tablet on the shelter
network sees only the pairing page until it types the laptop's one-time code, the laptop needs no
pairing, revocation holds from the next request, and two devices registering the same family at
the same moment leave one household (the intake duplicate check applies across devices).

The certificate is pinned: every client trusts exactly the certificate the server made."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from app.audit_models import AuditEntry
from app.models import Evacuee, PairedDevice
from tests.web.helpers import build_shelter, csrf_of, login
from tests.web.server import TABLET_SOURCE, LanServer, serve_lan

pytestmark = pytest.mark.xdist_group("lan")


@pytest.fixture
def lan(tmp_path: Path):  # type: ignore[no-untyped-def]
    shelter = build_shelter(tmp_path)
    with serve_lan(shelter.db_path, tmp_path) as srv:
        yield srv


def client(srv: LanServer, *, tablet: bool, source: str = TABLET_SOURCE) -> httpx.Client:
    """The laptop's own browser (from 127.0.0.1), or a tablet (from `source`); both pin the
    certificate the server made."""
    verify = ssl.create_default_context(cafile=str(srv.cert_file))
    transport = httpx.HTTPTransport(verify=verify, local_address=source if tablet else "127.0.0.1")
    return httpx.Client(base_url=srv.base, transport=transport, timeout=30)


def pairing_code(srv: LanServer) -> str:
    """What the administrator reads off the laptop's 端末 screen."""
    with client(srv, tablet=False) as laptop:
        login(laptop, "管理")
        page = laptop.get("/admin/devices")
        r = laptop.post("/admin/devices/code", data={"csrf_token": csrf_of(page.text)}, follow_redirects=True)
        m = re.search(r'id="pair-code-value">(\d{3}) (\d{3})<', r.text)
        assert m, r.text[:800]
        return m.group(1) + m.group(2)


def pair(tablet: httpx.Client, code: str, name: str = "受付タブレット1") -> httpx.Response:
    page = tablet.get("/pair")
    assert page.status_code == 200
    return tablet.post("/pair", data={"csrf_token": csrf_of(page.text), "name": name, "code": code},
                       follow_redirects=False)


def test_plain_http_to_the_lan_port_gets_no_page(lan: LanServer) -> None:
    host = "127.0.0.1"
    with socket.create_connection((host, lan.port), timeout=10, source_address=(TABLET_SOURCE, 0)) as s:
        s.sendall(f"GET /switch HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        s.settimeout(10)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"HTTP/1.1 200" not in got and b"<html" not in got.lower() and "交代".encode() not in got
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{host}:{lan.port}/healthz", timeout=10)


def test_an_unpaired_tablet_sees_only_the_pairing_page(lan: LanServer) -> None:
    with client(lan, tablet=True) as tablet:
        r = tablet.get("/dashboard", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/pair?next=/dashboard"
        r = tablet.get("/switch", headers={"X-Forwarded-For": "127.0.0.1"}, follow_redirects=False)
        assert r.status_code == 303  # no header makes a tablet the laptop
        api = tablet.get("/api/status")
        assert api.status_code == 401 and api.json()["reason"] == "device"
        assert tablet.post("/intake", data={"m-0-name": "x"}, follow_redirects=False).status_code == 303
        assert tablet.get("/healthz").status_code == 200
        assert tablet.get("/static/app.css").status_code == 200
        for path in ("/self", "/self/x"):  # the self-registration kiosk: neither pairing nor login
            r = tablet.get(path, follow_redirects=False)
            assert not (r.status_code == 303 and r.headers["location"].startswith("/pair")), path
        raw = http.client.HTTPSConnection("127.0.0.1", lan.port, source_address=(TABLET_SOURCE, 0), timeout=30,
                                          context=ssl.create_default_context(cafile=str(lan.cert_file)))
        for sneaky in ("/self/../dashboard", "/static/../api/status", "/self/%2e%2e/dashboard", "//self/x"):
            raw.request("GET", sneaky)  # sent as written: no client tidies the dots away
            answer = raw.getresponse()
            answer.read()
            assert answer.status in (303, 401, 404), (sneaky, answer.status)
            assert answer.status != 200, sneaky
        raw.close()
        page = tablet.get("/pair")
        assert page.status_code == 200 and "接続コード" in page.text and 'lang="ja"' in page.text
        assert all("secure" in c.lower() for c in page.headers.get_list("set-cookie"))


def test_the_laptop_needs_no_pairing(lan: LanServer) -> None:
    with client(lan, tablet=False) as laptop:
        r = laptop.get("/switch")
        assert r.status_code == 200 and "交代" in r.text
        assert "secure" in r.headers["set-cookie"].lower()
        login(laptop, "佐藤")
        assert laptop.get("/api/status").status_code == 200


def test_pairing_with_the_one_time_code_then_revocation(lan: LanServer) -> None:
    code = pairing_code(lan)
    with client(lan, tablet=True) as tablet, client(lan, tablet=True) as other:
        wrong = "000000" if code != "000000" else "111111"
        r = pair(tablet, wrong)
        assert r.status_code == 401 and "接続コードが違う" in r.text
        r = pair(tablet, code)
        assert r.status_code == 303 and r.headers["location"] == "/switch"
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("anpi_device="))
        assert "httponly" in cookie.lower() and "secure" in cookie.lower()
        assert tablet.get("/switch").status_code == 200
        login(tablet, "佐藤")
        assert tablet.get("/dashboard").status_code == 200
        assert pair(other, code).status_code == 401  # one code, one device
        assert other.get("/dashboard", follow_redirects=False).status_code == 303
        with client(lan, tablet=False) as laptop:
            login(laptop, "管理")
            page = laptop.get("/admin/devices").text
            assert "受付タブレット1" in page and lan.fingerprint[:47] in page and lan.fingerprint[48:] in page
            assert 'id="lan-qr"' in page
            m = re.search(r'action="/admin/devices/([^/"]+)/revoke"', page)
            assert m
            r = laptop.post(f"/admin/devices/{m.group(1)}/revoke", data={"csrf_token": csrf_of(page)},
                            follow_redirects=True)
            assert "取消済み" in r.text
            audit_page = laptop.get("/admin/audit").text
            assert "端末の登録取消" in audit_page and "端末の名前: 受付タブレット1" in audit_page
        r = tablet.get("/dashboard", follow_redirects=False)  # the very next request
        assert r.status_code == 303 and r.headers["location"].startswith("/pair")
    with Session(lan.app.state.engine) as s:  # type: ignore[attr-defined]
        dev = s.exec(select(PairedDevice)).one()
        assert dev.revoked_by == "管理" and len(dev.token_hash) == 64
        actions = [a.action for a in s.exec(select(AuditEntry))]
    assert {"device_code", "device_pair", "device_pair_failed", "device_revoke"} <= set(actions)


def test_the_device_list_answers_the_laptop_only(lan: LanServer) -> None:
    code = pairing_code(lan)
    with client(lan, tablet=True) as tablet:
        assert pair(tablet, code).status_code == 303
        login(tablet, "管理")
        r = tablet.get("/admin/devices")
        assert r.status_code == 403 and "ノートパソコンでのみ" in r.text
        token = csrf_of(tablet.get("/dashboard").text)
        assert tablet.post("/admin/devices/code", data={"csrf_token": token}).status_code == 403


def test_a_code_dies_after_five_wrong_tries(lan: LanServer) -> None:
    code = pairing_code(lan)
    wrong = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, 6)]
    with client(lan, tablet=True) as guesser, client(lan, tablet=True, source="127.0.0.3") as other:
        for w in wrong[:3]:
            assert pair(guesser, w).status_code == 401
        for w in wrong[3:]:  # another address does not start the count again: the code counts every try
            assert pair(other, w).status_code == 401
        assert pair(other, code).status_code == 401  # dead now, even the right one
        for w in wrong[:2]:
            assert pair(guesser, w).status_code == 401
        r = pair(guesser, pairing_code(lan))  # this address has guessed 5 times in a row: it waits
        assert r.status_code == 429 and "分間登録できません" in r.text


def _paired_staff(srv: LanServer, name: str, code: str) -> httpx.Client:
    c = client(srv, tablet=True)
    assert pair(c, code, f"{name}のタブレット").status_code == 303
    login(c, name)
    return c


def test_two_devices_registering_the_same_family_at_once_leave_one_household(lan: LanServer) -> None:
    a = _paired_staff(lan, "佐藤", pairing_code(lan))
    b = _paired_staff(lan, "鈴木", pairing_code(lan))
    families = [
        {"address": "高田町1", "m-0-name": "岩手 太郎", "m-0-birth_date": "S45.1.1", "m-0-sex": "男",
         "m-1-name": "岩手 花子", "m-1-birth_date": "S47.2.2", "m-1-sex": "女"},
        {"address": "気仙町2", "m-0-name": "宮城 次郎", "m-0-birth_date": "1980-03-03", "m-0-sex": "男"},
        {"address": "米崎町3", "m-0-name": "福島 三郎", "m-0-birth_date": "H2.4.4", "m-0-sex": "男"},
    ]
    try:
        for fields in families:
            tokens = {c: csrf_of(c.get("/intake").text) for c in (a, b)}
            barrier = threading.Barrier(2)
            answers: dict[str, int] = {}

            def send(c: httpx.Client, who: str, fields: dict[str, str] = fields) -> None:
                barrier.wait()
                answers[who] = c.post("/intake", data={"csrf_token": tokens[c], **fields},
                                      follow_redirects=False).status_code

            threads = [threading.Thread(target=send, args=(c, w)) for c, w in ((a, "a"), (b, "b"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted(answers.values()) == [303, 409], answers  # one registers, the other is warned
    finally:
        a.close()
        b.close()
    with Session(lan.app.state.engine) as s:  # type: ignore[attr-defined]
        names = [e.name_raw for e in s.exec(select(Evacuee))]
    for person in ("岩手 太郎", "岩手 花子", "宮城 次郎", "福島 三郎"):
        assert names.count(person) == 1, person


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen, seconds: float = 60) -> re.Match[str]:  # type: ignore[type-arg]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"))
        if m:
            return m
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never printed: {log.read_text(errors='replace')[-500:]}")


@pytest.mark.slow
def test_the_anpi_serve_lan_command(tmp_path: Path) -> None:
    """The real command line: HTTPS on the given port with the fingerprint it printed (and a QR code),
    no key file left behind, plain HTTP refused; without --lan plain HTTP on 127.0.0.1 as before."""
    from app.services.lan_tls import fingerprint_of
    from bench.processes import stop
    from tests.web.server import free_port

    shelter = build_shelter(tmp_path, evacuees=False)
    env = {**os.environ, "TMPDIR": str(tmp_path), "ANPI_SYNC_INTERVAL": "3600"}
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(shelter.db_path), "serve", "--lan",
                                 "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=out)
    try:
        fp = _wait_for(log, r"fingerprint: ([0-9A-F:]{95})", proc).group(1)
        assert "▀" in log.read_text() or "█" in log.read_text()  # the QR code on the laptop's terminal
        deadline = time.monotonic() + 30
        while True:
            try:
                pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert fingerprint_of(pem) == fp
        (tmp_path / "pin.pem").write_text(pem)
        r = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=ssl.create_default_context(cafile=str(tmp_path / "pin.pem")))
        assert r.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert not list(tmp_path.glob("anpi-tls-*")), "the certificate files are removed once loaded"
    finally:
        stop(proc)
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(shelter.db_path), "serve",
                                 "--port", str(port)], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        stop(proc)
