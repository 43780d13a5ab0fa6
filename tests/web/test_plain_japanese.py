"""Issue 14 item 9 without a browser (runs where Chromium is missing too): the staff screens, filled
with data that produces engine reasons, show no developer text — no `same-address`, `=`, JSON,
commands or URL paths — in what a person reads (tags, attributes, scripts and styles stripped)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from tests.web.helpers import client_as, shelter_app
from tests.web.test_desk_screens import DEV_TOKENS, desk_shelter


def visible_text(page: str) -> str:
    page = re.sub(r"(?is)<(script|style|svg)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<[^>]+>", " ", page)
    return html.unescape(page)


def test_no_developer_text_on_staff_screens(tmp_path: Path) -> None:
    sh = desk_shelter(tmp_path)
    for app in shelter_app(sh.db_path):
        admin = client_as(app, "管理")
        paths = ["/dashboard", "/review", "/roster", "/roster?q=ササキ", "/hq", "/hq?name=しみず", "/admin/shelters",
                 "/desk/sought", "/admin/users", "/admin/registry", "/admin/audit"]
        paths += [f"/roster/{ev}" for ev in sh.evacuee_ids.values()]
        for path in paths:
            r = admin.get(path)
            assert r.status_code == 200, (path, r.status_code)
            text = visible_text(r.text)
            found = [t for t in DEV_TOKENS if t in text]
            assert not found, f"{path}: developer text {found}: {text[:1500]!r}"
        review = visible_text(admin.get("/review").text)
        assert "生年月日" in review and "性別" in review
        person = visible_text(admin.get(f"/roster/{sh.evacuee_ids['shimizu']}").text)
        assert "住所の番地まで一致" in person and "生年月日が一致" in person
