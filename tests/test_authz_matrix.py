"""Authorisation matrix: every route of the app (OpenAPI and HTML) called anonymously and as each role.

The table below is the policy in one place. A route added without a row here fails
`test_every_route_is_in_the_matrix`, so nobody can add a screen or endpoint and forget its role.

Expected answers
- public: anything but 401/403 (login, 交代, health, OpenAPI, static files)
- anonymous on a protected route: 401 JSON for /api/…, 303 to the 交代 screen for HTML
- a role without the permission: 403 (JSON or a Japanese error page)
- a role with it: 200 for GET; for writes 2xx/303 or a business answer (404/409/422), never 401/403
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.web.helpers import STAFF, api_csrf, build_shelter, login, shelter_app

warnings.filterwarnings("ignore", category=DeprecationWarning)

ALL = {"staff", "desk", "hq", "admin"}
WORK = {"staff", "hq", "admin"}  # the shelter's own work: register, review, import rosters
EXPORT = {"hq", "admin"}
ADMIN = {"admin"}
PUBLIC = "public"

#: (method, path) → roles allowed, or PUBLIC
MATRIX: dict[tuple[str, str], Any] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/session"): PUBLIC,
    ("POST", "/api/session"): PUBLIC,
    ("POST", "/api/session/lock"): PUBLIC,
    ("GET", "/api/session/ping"): ALL,
    ("GET", "/api/session/drafts/{form}"): ALL,
    ("PUT", "/api/session/drafts/{form}"): ALL,
    ("DELETE", "/api/session/drafts/{form}"): ALL,
    ("GET", "/api/status"): ALL,
    ("GET", "/api/search"): ALL,
    ("GET", "/api/check-birth"): WORK,
    ("GET", "/api/evacuees"): ALL,
    ("GET", "/api/evacuees/duplicates"): WORK,
    ("POST", "/api/evacuees/household"): WORK,
    ("GET", "/api/evacuees/export.csv"): EXPORT,
    ("GET", "/api/evacuees/{evacuee_id}"): ALL,
    ("PATCH", "/api/evacuees/{evacuee_id}"): WORK,
    ("POST", "/api/evacuees/{evacuee_id}/checkout"): WORK,
    ("POST", "/api/evacuees/{evacuee_id}/checkin"): WORK,
    ("POST", "/api/evacuees/{evacuee_id}/transfer"): WORK,
    ("POST", "/api/evacuees/{evacuee_id}/decision"): WORK,
    ("GET", "/api/review"): WORK,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("POST", "/api/users/{user_id}/disable"): ADMIN,
    ("POST", "/api/users/{user_id}/setup-code"): ADMIN,
    ("GET", "/api/registry/snapshots"): ADMIN,
    ("POST", "/api/registry/import"): ADMIN,
    ("GET", "/api/registry/jobs/{job_id}"): ADMIN,
    ("GET", "/api/audit"): ADMIN,
    ("GET", "/api/audit/verify"): ADMIN,
    ("GET", "/api/audit/export.jsonl"): ADMIN,
    ("POST", "/api/roster/import"): WORK,
    ("POST", "/api/inquiries"): {"desk", "hq", "admin"},  # 安否照会
    ("GET", "/api/inquiries"): EXPORT,  # the inquiry log (hq.list)
    ("GET", "/api/hq/list"): EXPORT,  # 安否確認 list (hq.list)
    ("GET", "/api/hq/counts"): EXPORT,
    ("POST", "/api/hq/confirmations"): EXPORT,  # hq.confirm
    # HTML screens
    ("GET", "/"): PUBLIC,
    ("GET", "/switch"): PUBLIC,
    ("POST", "/switch"): PUBLIC,
    ("POST", "/switch/pin"): PUBLIC,
    ("GET", "/switch/setup"): PUBLIC,
    ("POST", "/lock"): PUBLIC,
    ("GET", "/pair"): PUBLIC,  # 端末の登録 (anpi serve --lan): the one-time code is the check
    ("POST", "/pair"): PUBLIC,
    ("GET", "/dashboard"): ALL,
    ("GET", "/intake"): WORK,
    ("POST", "/intake"): WORK,
    ("GET", "/review"): WORK,
    ("POST", "/review/{evacuee_id}"): WORK,
    ("POST", "/review/{evacuee_id}/merge"): WORK,
    ("GET", "/roster"): ALL,
    ("GET", "/roster/print"): WORK,
    ("GET", "/noticeboard"): WORK,
    ("POST", "/cards/print"): WORK,
    ("GET", "/desk/scan"): WORK,
    ("POST", "/desk/scan"): WORK,
    ("POST", "/desk/scan/confirm"): WORK,
    ("GET", "/roster/import"): WORK,
    ("POST", "/roster/import"): WORK,
    ("POST", "/roster/flags/{flag_id}/resolve"): WORK,
    ("GET", "/roster/{evacuee_id}"): ALL,
    ("GET", "/roster/{evacuee_id}/edit"): WORK,
    ("POST", "/roster/{evacuee_id}/edit"): WORK,
    ("POST", "/roster/{evacuee_id}/checkout"): WORK,
    ("POST", "/roster/{evacuee_id}/checkin"): WORK,
    ("POST", "/roster/{evacuee_id}/transfer"): WORK,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{user_id}/disable"): ADMIN,
    ("POST", "/admin/users/{user_id}/setup-code"): ADMIN,
    ("GET", "/admin/registry"): ADMIN,
    ("POST", "/admin/registry"): ADMIN,
    ("GET", "/admin/shelters"): ADMIN,
    ("POST", "/admin/shelters"): ADMIN,
    ("GET", "/admin/devices"): ADMIN,  # 端末: paired devices (and, on the LAN, the laptop's browser only)
    ("POST", "/admin/devices/code"): ADMIN,
    ("POST", "/admin/devices/{device_id}/revoke"): ADMIN,
    ("GET", "/admin/audit"): ADMIN,
    ("GET", "/admin/audit/anomalies"): ADMIN,
    ("GET", "/hq"): EXPORT,  # 安否確認 (hq.list)
    ("POST", "/hq/confirm"): EXPORT,  # hq.confirm
    ("GET", "/hq/export"): EXPORT,  # export
    ("POST", "/admin/backup"): ADMIN,
    ("GET", "/desk/inquiry"): {"desk", "hq", "admin"},
    ("POST", "/desk/inquiry"): {"desk", "hq", "admin"},
    ("GET", "/desk/inquiry/log"): EXPORT,
    ("GET", "/desk/inquiry/{inquiry_id}"): {"desk", "hq", "admin"},
    ("GET", "/desk/certificates"): {"desk", "hq", "admin"},  # り災証明書 / 被災証明書
    ("GET", "/desk/certificates/new"): {"desk", "hq", "admin"},
    ("POST", "/desk/certificates"): {"desk", "hq", "admin"},
    ("GET", "/desk/certificates/manual"): {"desk", "hq", "admin"},
    ("POST", "/desk/certificates/manual"): {"desk", "hq", "admin"},
    ("GET", "/desk/certificates/{number}"): {"desk", "hq", "admin"},
    ("GET", "/desk/certificates/{number}/pdf"): {"desk", "hq", "admin"},
    ("GET", "/desk/certificates/{number}/print"): {"desk", "hq", "admin"},
    ("POST", "/desk/certificates/{number}/reissue"): {"desk", "hq", "admin"},
    ("POST", "/desk/certificates/{number}/void"): {"desk", "hq", "admin"},
    # 本人記入: the kiosk form is public (it opens its own kiosk session); its queue is the desk's work
    ("GET", "/self"): PUBLIC,
    ("POST", "/self"): PUBLIC,
    ("GET", "/self/sent"): PUBLIC,
    ("POST", "/self/reset"): PUBLIC,
    ("GET", "/intake/self-queue"): WORK,
    ("GET", "/intake/self-queue/{entry_id}"): WORK,
    ("POST", "/intake/self-queue/{entry_id}/discard"): WORK,
    ("GET", "/desk/sought"): {"desk", "hq", "admin"},  # 捜索依頼 (PFIF)
    ("POST", "/desk/sought/import"): {"desk", "hq", "admin"},
    ("POST", "/desk/sought/relink"): {"desk", "hq", "admin"},
    ("POST", "/desk/sought/{sought_id}/decide"): {"desk", "hq", "admin"},
}

#: routes that change who is logged in on the client: called from a fresh client, not in the role loop
SESSION_CHANGING = {("POST", "/api/session"), ("POST", "/api/session/lock"), ("POST", "/switch"),
                    ("POST", "/switch/pin"), ("POST", "/lock"), ("POST", "/self"), ("POST", "/self/reset")}
#: the kiosk's pages replace a staff session with a kiosk one (tests/web/test_self_registration.py):
#: called from a fresh client, not in the role loop
KIOSK_PAGES = {("GET", "/self"), ("GET", "/self/sent")}
#: allowed GETs that redirect with the placeholder ids used here (no such entry: back to the list)
GET_303_OK = {("GET", "/intake/self-queue/{entry_id}")}
#: allowed GETs that legitimately answer 404 with the placeholder ids used here
GET_404_OK = {("GET", "/api/registry/jobs/{job_id}")}
GET_404_OK.add(("GET", "/desk/inquiry/{inquiry_id}"))  # placeholder id: no such inquiry
GET_404_OK.update({("GET", "/desk/certificates/{number}"), ("GET", "/desk/certificates/{number}/pdf"),
                   ("GET", "/desk/certificates/{number}/print")})  # placeholder number: no such certificate
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

ROSTER_CSV = "受付番号,氏名,ふりがな,生年月日,性別\r\nA1,岩手 太郎,いわて たろう,S50.1.1,男\r\nA2,,,,x\r\n".encode("utf-8")


def app_routes(app: Any) -> set[tuple[str, str]]:
    def walk(routes: list[Any]):  # type: ignore[no-untyped-def]
        for r in routes:
            if hasattr(r, "original_router"):
                yield from walk(r.original_router.routes)
            else:
                yield r

    out = set()
    for r in walk(app.routes):
        if r.path == "/static":
            continue
        for m in getattr(r, "methods", None) or ():
            if m != "HEAD":
                out.add((m, r.path))
    return out


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path)


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path, auto_lock_seconds=3600)


def _fill(path: str, shelter: Any) -> str:
    return (path.replace("{evacuee_id}", shelter.evacuee_ids["sasaki"]).replace("{user_id}", shelter.user_ids["新人"])
            .replace("{form}", "intake").replace("{job_id}", "nojob"))


def _call(client: TestClient, method: str, path: str, shelter: Any, token: str | None) -> Any:
    url = _fill(path, shelter)
    headers = {"X-CSRF-Token": token} if token else {}
    kw: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if path.startswith("/api/"):
        if path == "/api/evacuees/household":
            kw["json"] = {"members": [{"name": "試験 太郎", "birth_date": "1980-01-01", "sex": "男"}]}
        elif method == "PATCH":
            kw["json"] = {"changes": {"pets": "猫1匹"}}
        elif path.endswith("/decision"):
            kw["json"] = {"decision": "not_resident"}
        elif path.endswith("/transfer"):
            kw["json"] = {"destination": "第二中学校"}
        elif path == "/api/users":
            kw["json"] = {"name": "追加 太郎", "role": "staff"}
        elif path == "/api/registry/import":
            kw["files"] = {"file": ("juki.csv", shelter.registry_csv.read_bytes(), "text/csv")}
        elif path == "/api/roster/import":
            kw["files"] = {"file": ("roster.csv", ROSTER_CSV, "text/csv")}
        elif method == "PUT":
            kw["json"] = {"m-0-name": "下書き"}
        elif method == "POST" and path == "/api/session":
            kw["json"] = {"user": "佐藤", "pin": "1234"}
    elif method == "POST":
        data: dict[str, str] = {"csrf_token": token} if token else {}
        files = None
        if path == "/intake":
            data.update({"m-0-name": "試験 花子", "m-0-birth_date": "H2.4.5", "m-0-sex": "女"})
        elif path.startswith("/review/"):
            data["decision"] = "not_resident"
        elif path.endswith("/transfer"):
            data["destination"] = "第二中学校"
        elif path.endswith("/edit"):
            data.update({"name": "ささき けん", "sex": "男", "pets": "猫"})
        elif path == "/admin/users":
            data.update({"name": "画面 追加", "role": "desk"})
        elif path == "/admin/shelters":
            data.update({"code": "S-MATRIX", "name": "試験 避難所", "capacity": "50"})
        elif path == "/roster/import":
            files = {"file": ("roster.csv", ROSTER_CSV, "text/csv")}
        elif path == "/desk/sought/import":
            files = {"file": ("sample-import.csv", (Path(__file__).parent / "data/pfif/sample-import.csv").read_bytes(),
                              "text/csv")}
        elif path == "/admin/registry":
            files = {"file": ("juki.csv", shelter.registry_csv.read_bytes(), "text/csv")}
        elif path == "/switch":
            data.update({"user_id": shelter.user_ids["佐藤"], "pin": "1234"})
        kw["data"] = data
        if files:
            kw["files"] = files
        kw["headers"] = {}
    return client.request(method, url, **kw)


def test_every_route_is_in_the_matrix(app) -> None:  # type: ignore[no-untyped-def]
    routes = app_routes(app)
    assert routes - set(MATRIX) == set(), "routes without a row in MATRIX"
    assert set(MATRIX) - routes == set(), "MATRIX rows for routes that no longer exist"


def test_openapi_lists_every_api_route(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    schema = client.get("/openapi.json").json()
    listed = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    api_routes = {k for k in MATRIX if k[1].startswith("/api/") or k[1] == "/healthz"}
    assert api_routes <= listed


@pytest.mark.parametrize("role", ["anonymous", "staff", "desk", "hq", "admin"])
def test_matrix(app, shelter, role: str) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    if role != "anonymous":
        name = next(n for n, (r, pin) in STAFF.items() if r == role and pin)
        login(client, name)
    token = api_csrf(client)
    failures = []
    # GETs first so that writes (checkout, disable …) cannot change what a GET answers
    ordered = sorted((k for k in MATRIX if k not in SESSION_CHANGING | KIOSK_PAGES), key=lambda k: (k[0] != "GET", k[1]))
    for method, path in ordered:
        allowed = MATRIX[(method, path)]
        r = _call(client, method, path, shelter, token)
        code = r.status_code
        api = path.startswith("/api/")
        if allowed == PUBLIC:
            ok = code not in (401, 403) and code < 500
        elif role == "anonymous":
            ok = code == 401 if api else (code == 303 and r.headers["location"].startswith("/switch"))
        elif role not in allowed:
            ok = code == 403
        elif method == "GET":
            ok = (code == 200 or ((method, path) in GET_404_OK and code == 404) or (path == "/" and code == 303)
                  or ((method, path) in GET_303_OK and code == 303))
        else:
            ok = code in (200, 201, 202, 303, 404, 409, 422)
        if not ok:
            failures.append(f"{method} {path}: {code} {r.text[:160]!r}")
    assert not failures, f"as {role}:\n" + "\n".join(failures)


def test_session_changing_routes_are_public_but_need_csrf(app, shelter) -> None:  # type: ignore[no-untyped-def]
    for method, path in sorted(SESSION_CHANGING):
        client = TestClient(app)
        token = api_csrf(client)
        r = _call(client, method, path, shelter, token)
        assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, r.status_code, r.text[:200])
        fresh = TestClient(app)
        api_csrf(fresh)
        r = _call(fresh, method, path, shelter, None)
        assert r.status_code == 403, (method, path, "without CSRF token", r.status_code)


def test_the_kiosk_pages_are_public(app, shelter) -> None:  # type: ignore[no-untyped-def]
    for method, path in sorted(KIOSK_PAGES):
        r = _call(TestClient(app), method, path, shelter, None)
        assert r.status_code == 200, (method, path, r.status_code)


def test_every_write_needs_the_csrf_token(app, shelter) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    login(client, "管理")
    api_csrf(client)
    for method, path in sorted(k for k in MATRIX if k[0] in {"POST", "PUT", "PATCH", "DELETE"}):
        for token in (None, "wrong-token"):
            r = _call(client, method, path, shelter, token)
            assert r.status_code == 403, (method, path, token, r.status_code, r.text[:200])
    # a foreign Origin is refused even with the right token
    token = api_csrf(client)
    r = client.put("/api/session/drafts/intake", json={}, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert r.status_code == 403


def test_cookie_flags_and_no_store(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    r = client.get("/switch")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert r.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in r.headers["content-security-policy"]
