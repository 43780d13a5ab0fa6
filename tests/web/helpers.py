"""Shared set-up for the staff UI tests: a real shelter SQLite file with a tiny registry and staff."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlmodel import Session

from tests.conftest import write_csv

HEADER = ["宛名番号", "世帯番号", "氏", "名", "氏カナ", "名カナ", "英字氏名", "生年月日", "性別", "続柄", "郵便番号", "住所", "閲覧制限"]
ADDR = "岩手県陸前高田市高田町字館の沖12-3"
REGISTRY = [
    ["1001", "H1", "髙橋", "一郎", "タカハシ", "イチロウ", "", "S45.3.1", "1", "世帯主", "029-2205", ADDR, ""],
    ["1002", "H1", "髙橋", "京子", "タカハシ", "キヨウコ", "", "昭和47年11月3日", "2", "妻", "029-2205", ADDR, ""],
    ["1003", "H1", "髙橋", "翔", "タカハシ", "シヨウ", "", "20050405", "男", "子", "029-2205", ADDR, ""],
    ["1004", "H2", "山﨑", "花", "ヤマザキ", "ハナ", "", "1999-12-31", "女", "世帯主", "", "岩手県陸前高田市米崎町2-1", "1"],
    ["1005", "H3", "グエン", "ヴァン アン", "グエン", "ヴァンアン", "NGUYEN VAN AN", "1990/1/2", "M", "世帯主", "", "高田町1", ""],
    ["1006", "H4", "渡邉", "稔", "ワタナベ", "ミノル", "", "S30.5.5", "1", "世帯主", "", "岩手県陸前高田市高田町2", ""],
    ["1007", "H5", "佐々木", "健", "ササキ", "ケン", "", "S55.2.2", "1", "世帯主", "", "岩手県陸前高田市気仙町3", ""],
    ["1008", "H6", "佐々木", "健二", "ササキ", "ケンジ", "", "S55.2.20", "1", "世帯主", "", "岩手県陸前高田市気仙町5", ""],
]

#: name → (role, PIN); 新人 has no PIN yet: a setup code (Shelter.setup_codes) and then their own PIN
STAFF = {
    "佐藤": ("staff", "1234"),
    "鈴木": ("staff", "5678"),
    "窓口": ("desk", "3333"),
    "本部": ("hq", "2222"),
    "管理": ("admin", "9999"),
    "新人": ("staff", None),
}


@dataclass
class Shelter:
    db_path: Path
    registry_csv: Path
    user_ids: dict[str, str] = field(default_factory=dict)
    evacuee_ids: dict[str, str] = field(default_factory=dict)
    setup_codes: dict[str, str] = field(default_factory=dict)


def build_shelter(tmp_path: Path, *, evacuees: bool = True) -> Shelter:
    """A shelter database with the registry above imported, the staff above and (optionally) two evacuees."""
    from app.db import open_shelter_db
    from app.services import accounts, audit
    from app.services.registry import import_registry

    db_path = tmp_path / "shelter.db"
    csv_path = write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY])
    engine = open_shelter_db(db_path)
    import_registry(engine, csv_path, as_of=date(2026, 10, 31))
    sh = Shelter(db_path, csv_path)
    with Session(engine, expire_on_commit=False) as s:
        for name, (role, pin) in STAFF.items():
            u, code = accounts.add_user_with_code(s, name, role, pin)
            sh.user_ids[name] = u.id
            if code:
                sh.setup_codes[name] = code
        s.commit()
    if evacuees:
        from app.services.roster import EvacueeInput, register

        with Session(engine, expire_on_commit=False) as s:
            # 渡辺: sex typed wrongly, so it contradicts the registry and goes to staff for review;
            # ささき: no date of birth and no address, so a name alone may not link automatically
            a = register(s, EvacueeInput(name="渡辺 稔", name_kana="わたなべ みのる", birth_date="S30.5.5", sex="女",
                                         address="高田町2"), by="佐藤")
            b = register(s, EvacueeInput(name="ささき けん", birth_date="", sex="男"), by="佐藤")
            s.commit()
            sh.evacuee_ids = {"watanabe": a.id, "sasaki": b.id}
    engine.dispose()
    return sh


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def login(client, name: str, pin: str | None = None, *, expect: int = 303):  # type: ignore[no-untyped-def]
    """Log `name` in through the 交代 screen like a person would; returns the response of the POST."""
    page = client.get("/switch")
    token = csrf_of(page.text)
    m = re.search(r'name="user_id" value="([^"]+)"[^>]*>\s*<span class="tile-num"[^>]*>[^<]*</span>\s*<span class="tile-name">'
                  + re.escape(name) + "<", page.text)
    assert m, f"{name} is not on the 交代 screen"
    pin = pin if pin is not None else STAFF[name][1]
    r = client.post("/switch", data={"csrf_token": token, "user_id": m.group(1), "pin": pin or ""}, follow_redirects=False)
    assert r.status_code == expect, r.text[:500]
    return r


def api_csrf(client) -> str:  # type: ignore[no-untyped-def]
    return client.get("/api/session").json()["csrf_token"]


def shelter_app(db_path: Path, auto_lock_seconds: int = 300) -> Iterator:  # type: ignore[type-arg]
    """The shelter app on `db_path` for one test, its database engine closed afterwards.
    Use from a fixture: ``yield from shelter_app(shelter.db_path)``."""
    from app.main import create_app

    app = create_app(db_path, auto_lock_seconds=auto_lock_seconds)
    yield app
    app.state.engine.dispose()


def client_as(app, name: str):  # type: ignore[no-untyped-def]
    """A TestClient logged in as `name` through the 交代 screen."""
    from fastapi.testclient import TestClient

    c = TestClient(app)
    login(c, name)
    return c

