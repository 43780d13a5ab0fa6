"""交代 (switch user), PINs, lockout, auto-lock and drafts, through the HTTP face."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit_models import AuditEntry
from tests.web.helpers import api_csrf, build_shelter, csrf_of, login, shelter_app

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path, evacuees=False)


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path)


def actions(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with Session(app.state.engine) as s:
        return [(e.user_name, e.action) for e in s.exec(select(AuditEntry).order_by(AuditEntry.id))]


def test_switch_screen_lists_active_staff_only(app, shelter) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    login(client, "管理")
    r = client.post("/admin/users/" + shelter.user_ids["鈴木"] + "/disable", data={"csrf_token": csrf_of(client.get("/admin/users").text)},
                    follow_redirects=False)
    assert r.status_code == 303
    page = TestClient(app).get("/switch").text
    assert 'lang="ja"' in page
    assert "佐藤" in page and "鈴木" not in page
    # nothing tells which accounts have a PIN (新人 has none yet)
    assert "初回" not in page and "data-pin-set" not in page and 'href="/switch/setup' in page


def test_login_rotates_the_session_and_lands_on_the_dashboard(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    client.get("/switch")
    before = client.cookies.get("anpi_session")
    r = login(client, "佐藤")
    assert r.headers["location"] == "/dashboard"
    assert client.cookies.get("anpi_session") != before
    page = client.get("/dashboard").text
    assert "佐藤" in page and "ダッシュボード" in page
    assert ("佐藤", "login") in actions(app)


def test_wrong_pin_message_then_lockout(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    r = login(client, "佐藤", "0000", expect=401)
    assert "暗証番号が違います" in r.text and "あと4回" in r.text
    assert 'aria-invalid="true"' in r.text
    for _ in range(4):
        r = login(client, "佐藤", "0000", expect=401)
    assert "5分間ロック" in r.text
    r = login(client, "佐藤", "1234", expect=429)  # even the right PIN is refused from this client while locked
    assert "ロック" in r.text
    assert actions(app).count(("佐藤", "login_failed")) == 5
    # …but not from another device: one client cannot lock anybody out of the shelter
    login(TestClient(app, client=("192.0.2.7", 50000)), "佐藤", "1234")


def test_first_use_needs_the_setup_code(app, shelter) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    uid = shelter.user_ids["新人"]
    # picking the account on the 交代 screen answers exactly like a wrong PIN: no first-use screen
    r = login(client, "新人", "", expect=401)
    assert "暗証番号が違います" in r.text and "初期設定コード" not in r.text.split("first-use-link")[0][-2000:]
    page = client.get("/switch/setup")
    assert page.status_code == 200 and 'action="/switch/pin"' in page.text
    token = csrf_of(page.text)
    code = shelter.setup_codes["新人"]

    def claim(c, **form):  # type: ignore[no-untyped-def]
        return c.post("/switch/pin", data={"csrf_token": csrf_of(c.get("/switch/setup").text), "user_id": uid, **form},
                      follow_redirects=False)

    r = client.post("/switch/pin", data={"csrf_token": token, "user_id": uid, "setup_code": code, "pin": "12", "pin2": "12"})
    assert r.status_code == 422 and "4〜6桁" in r.text
    r = claim(client, setup_code=code, pin="4321", pin2="4322")
    assert r.status_code == 422 and "一致しません" in r.text
    r = claim(client, setup_code="", pin="4321", pin2="4321")  # the old attack: no code, just a new PIN
    assert r.status_code == 401 and "初期設定コードが違います" in r.text
    r = claim(client, setup_code="AAAA-BBBB", pin="4321", pin2="4321")
    assert r.status_code == 401 and "初期設定コードが違います" in r.text
    r = claim(client, setup_code=code.lower().replace("-", " "), pin="4321", pin2="4321")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    # the code is used up, and an account with a PIN answers the same as a wrong code
    other = TestClient(app, client=("192.0.2.8", 50000))
    for target, c in ((uid, code), (shelter.user_ids["佐藤"], "")):
        r = other.post("/switch/pin", data={"csrf_token": csrf_of(other.get("/switch/setup").text), "user_id": target,
                                            "setup_code": c, "pin": "9999", "pin2": "9999"})
        assert r.status_code == 401 and "初期設定コードが違います" in r.text
    login(TestClient(app), "新人", "4321")


def test_auto_lock_after_inactivity_and_back_to_the_same_page(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    login(client, "佐藤")
    assert client.get("/roster").status_code == 200
    app.state.sessions.auto_lock_seconds = 0.2
    time.sleep(0.3)
    r = client.get("/roster?q=高橋", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/switch?next=/roster")
    assert client.get("/api/status").status_code == 401
    page = client.get("/switch?next=/roster").text
    assert "ロックしました" in page
    app.state.sessions.auto_lock_seconds = 300
    token = csrf_of(page)
    uid = re.search(r'name="user_id" value="([^"]+)" checked', page).group(1)
    r = client.post("/switch", data={"csrf_token": token, "user_id": uid, "pin": "1234", "next": "/roster"},
                    follow_redirects=False)
    assert r.headers["location"] == "/roster"  # the same person comes back to where they were
    assert ("佐藤", "lock") in actions(app)


def test_next_page_is_not_given_to_another_user(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    login(client, "佐藤")
    token = csrf_of(client.get("/dashboard").text)
    r = client.post("/lock", data={"csrf_token": token, "next": "/roster/SOMEONE"}, follow_redirects=False)
    assert r.headers["location"] == "/switch?next=/roster/SOMEONE"
    page = client.get(r.headers["location"]).text
    token = csrf_of(page)
    uid = re.search(r'name="user_id" value="([^"]+)"[^>]*>\s*<span class="tile-num"[^>]*>[^<]*</span>\s*<span class="tile-name">鈴木<', page).group(1)
    r = client.post("/switch", data={"csrf_token": token, "user_id": uid, "pin": "5678", "next": "/roster/SOMEONE"},
                    follow_redirects=False)
    assert r.headers["location"] == "/dashboard"


def test_polling_does_not_keep_the_session_alive(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    login(client, "管理")
    app.state.sessions.auto_lock_seconds = 0.4
    for _ in range(3):
        time.sleep(0.15)
        client.get("/api/registry/jobs/x", headers={"X-Anpi-Poll": "1"})
    assert client.get("/api/status").status_code == 401


def test_drafts_belong_to_their_user(app) -> None:  # type: ignore[no-untyped-def]
    a, b = TestClient(app), TestClient(app)
    login(a, "佐藤")
    login(b, "鈴木")
    ta, tb = api_csrf(a), api_csrf(b)
    assert a.put("/api/session/drafts/intake", json={"m-0-name": "途中の人"}, headers={"X-CSRF-Token": ta}).status_code == 200
    assert b.get("/api/session/drafts/intake").json()["data"] is None
    assert "途中の人" not in b.get("/intake").text
    assert 'value="途中の人"' in a.get("/intake").text  # the owner's form comes back filled in
    # the same browser switching person: the next user does not see it either
    token = csrf_of(a.get("/dashboard").text)
    a.post("/lock", data={"csrf_token": token})
    login(a, "鈴木")
    assert "途中の人" not in a.get("/intake").text


def test_disabled_user_is_logged_out_at_once(app, shelter) -> None:  # type: ignore[no-untyped-def]
    staff, admin = TestClient(app), TestClient(app)
    login(staff, "佐藤")
    login(admin, "管理")
    assert staff.get("/api/status").status_code == 200
    r = admin.post(f"/api/users/{shelter.user_ids['佐藤']}/disable", headers={"X-CSRF-Token": api_csrf(admin)})
    assert r.status_code == 200
    assert staff.get("/api/status").status_code == 401
    r = admin.post(f"/api/users/{shelter.user_ids['管理']}/disable", headers={"X-CSRF-Token": api_csrf(admin)})
    assert r.status_code == 409  # nobody locks themselves out


def test_json_login_for_other_clients(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    info = client.get("/api/session").json()
    assert info["user"] is None
    r = client.post("/api/session", json={"user": "本部", "pin": "2222"}, headers={"X-CSRF-Token": info["csrf_token"]})
    assert r.status_code == 200 and r.json()["user"]["role"] == "hq"
    new_token = r.json()["csrf_token"]
    assert new_token != info["csrf_token"]
    assert client.get("/api/session").json()["user"]["name"] == "本部"
    assert client.get("/api/evacuees/export.csv").status_code == 200
    r = client.post("/api/session", json={"user": "佐藤", "pin": "1111"}, headers={"X-CSRF-Token": new_token})
    assert r.status_code == 401 and r.json()["detail_ja"].startswith("暗証番号が違います")
    # an account without a PIN: the same answer as a wrong PIN; new_pin without its setup code is refused
    r = client.post("/api/session", json={"user": "新人", "pin": ""}, headers={"X-CSRF-Token": new_token})
    assert r.status_code == 401 and r.json()["detail_ja"].startswith("暗証番号が違います")
    r = client.post("/api/session", json={"user": "新人", "new_pin": "4444"}, headers={"X-CSRF-Token": new_token})
    assert r.status_code == 401 and r.json()["reason"] == "setup_code"
    r = client.post("/api/session", json={"user": "管理", "new_pin": "4444", "setup_code": "AAAA-BBBB"},
                    headers={"X-CSRF-Token": new_token})
    assert r.status_code == 401 and r.json()["reason"] == "setup_code"
