"""Accounts without a PIN cannot be claimed by whoever picks them first (issue 12, item 5).

`anpi user add` without --pin, and admin `POST /api/users` without a PIN, hand out a one-time
setup code; the first PIN needs it. Old databases' PIN-less accounts need a code from an admin.
Real CLI, real SQLite files, the real app over TestClient.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from app.db import open_shelter_db
from tests.conftest import Cli
from tests.web.helpers import api_csrf, login, shelter_app
from app.db_crypto import connect as db_connect


def _json_login(app, user: str, **body: str):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    return c.post("/api/session", json={"user": user, **body}, headers={"X-CSRF-Token": api_csrf(c)})


def _code_of(output: str) -> str:
    m = re.search(r"setup code for .+: ([A-Z0-9]{4}-[A-Z0-9]{4})", output)
    assert m, output
    return m.group(1)


def test_cli_user_without_pin_needs_the_printed_setup_code(cli: Cli) -> None:
    code, out, err = cli("user", "add", "--name", "新任管理者", "--role", "admin")
    assert code == 0, err
    setup = _code_of(out)
    assert "needs a setup code" not in cli("user", "list")[1] and "setup code issued" in cli("user", "list")[1]
    for app in shelter_app(cli.db):
        # the attack of issue 12: an anonymous visitor picks the PIN-less admin and sets a PIN
        r = _json_login(app, "新任管理者", new_pin="1111")
        assert r.status_code == 401 and r.json()["reason"] == "setup_code"
        r = _json_login(app, "新任管理者", pin="")
        assert r.status_code == 401
        r = _json_login(app, "新任管理者", new_pin="2468", setup_code=setup)
        assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
        r = _json_login(app, "新任管理者", new_pin="1111", setup_code=setup)  # used up
        assert r.status_code == 401
        assert _json_login(app, "新任管理者", pin="2468").status_code == 200


def test_admin_api_user_without_pin_gets_a_code_shown_once(cli: Cli) -> None:
    assert cli("user", "add", "--name", "管理", "--role", "admin", "--pin", "9999")[0] == 0
    for app in shelter_app(cli.db):
        admin = TestClient(app)
        login(admin, "管理", "9999")
        r = admin.post("/api/users", json={"name": "新人", "role": "staff"}, headers={"X-CSRF-Token": api_csrf(admin)})
        assert r.status_code == 201 and re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", r.json()["setup_code"])
        setup = r.json()["setup_code"]
        listed = admin.get("/api/users").json()["users"]
        assert setup not in str(listed) and any(u["name"] == "新人" and u["setup_code_open"] for u in listed)
        assert _json_login(app, "新人", new_pin="1357").status_code == 401
        assert _json_login(app, "新人", new_pin="1357", setup_code=setup).status_code == 200
        # the admin UI: the code is on the page that created it, not in the redirect or the list
        page = admin.get("/admin/users")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = admin.post("/admin/users", data={"csrf_token": token, "name": "新人2", "role": "hq", "pin": ""},
                       follow_redirects=False)
        assert r.status_code == 200 and 'id="setup-code"' in r.text
        shown = re.search(r'id="setup-code">([A-Z0-9-]+)<', r.text).group(1)
        assert shown not in admin.get("/admin/users").text
        assert _json_login(app, "新人2", new_pin="8642", setup_code=shown).status_code == 200


def test_old_pinless_accounts_are_not_claimable_after_upgrade(tmp_path: Path, cli: Cli) -> None:
    """A database from before setup codes, holding a PIN-less admin: nobody can claim it until an
    admin issues a code (`anpi user setup-code`)."""
    open_shelter_db(cli.db).dispose()
    with db_connect(cli.db) as con:
        con.execute("ALTER TABLE staff DROP COLUMN setup_hash")
        con.execute("UPDATE alembic_version SET version_num = '0002'")
        con.execute("INSERT INTO staff (id, name, role, pin_hash, disabled, failed_attempts, created_at) "
                    "VALUES ('old1', '旧管理者', 'admin', NULL, 0, 0, '2026-01-01 00:00:00')")
    out = cli("user", "list")[1]
    assert "旧管理者" in out and "needs a setup code" in out
    for app in shelter_app(cli.db):
        for body in ({"new_pin": "1111"}, {"new_pin": "1111", "setup_code": ""}, {"pin": ""}):
            assert _json_login(app, "旧管理者", **body).status_code == 401
        code, out, err = cli("user", "setup-code", "旧管理者")
        assert code == 0, err
        assert _json_login(app, "旧管理者", new_pin="2222", setup_code=_code_of(out)).status_code == 200


def test_switch_page_is_the_same_with_and_without_pins(cli: Cli) -> None:
    """The 交代 screen's markup for an account does not depend on whether it has a PIN."""
    assert cli("user", "add", "--name", "甲", "--role", "staff", "--pin", "1234")[0] == 0
    assert cli("user", "add", "--name", "乙", "--role", "staff")[0] == 0
    for app in shelter_app(cli.db):
        html = TestClient(app).get("/switch").text
        tiles = re.findall(r'<label class="tile".*?</label>', html, flags=re.S)
        assert len(tiles) == 2
        norm = [re.sub(r'value="[^"]+"|data-index="\d"|>\d<|甲|乙', "", t) for t in tiles]
        assert norm[0] == norm[1] and "data-pin-set" not in html and "初回" not in html
