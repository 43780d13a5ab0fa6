"""捜索依頼 desk screen through HTTP: upload a PFIF file, see the links, confirm / 別人 / 取り消し, and
a 閲覧制限 resident never revealed to the desk role."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.db import open_shelter_db
from app.formats.pfif import write_pfif
from app.services.reconcile import reconcile_all
from tests.app.test_pfif_import import DATA, SOUGHT, counts
from tests.web.helpers import build_shelter, client_as, csrf_of, shelter_app
from app.db_crypto import connect as db_connect

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    reconcile_all(engine)
    engine.dispose()
    return sh


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path, auto_lock_seconds=3600)



def upload(c: TestClient, name: str, content: bytes):  # type: ignore[no-untyped-def]
    token = csrf_of(c.get("/desk/sought").text)
    return c.post("/desk/sought/import", data={"csrf_token": token}, files={"file": (name, content, "application/xml")})


def row_of(html: str, target_id: str) -> str:
    m = re.search(r'<tr class="[^"]*" data-kind="\w+" data-target="' + re.escape(target_id) + r'">(.*?)</tr>', html, re.S)
    assert m, f"no link row for {target_id}"
    return m.group(1)


def decide(c: TestClient, html: str, sought_id: str, kind: str, target: str, decision: str):  # type: ignore[no-untyped-def]
    return c.post(f"/desk/sought/{sought_id}/decide", follow_redirects=False,
                  data={"csrf_token": csrf_of(html), "kind": kind, "target_id": target, "decision": decision})


def sought_ids(db: Path) -> dict[str, str]:
    return {rid.split("/")[1]: sid for sid, rid in db_connect(db).execute("SELECT id, pfif_record_id FROM soughtperson")}


def test_desk_flow(app, shelter) -> None:  # type: ignore[no-untyped-def]
    desk = client_as(app, "窓口")
    page = desk.get("/desk/sought")
    assert page.status_code == 200 and 'id="sought-empty"' in page.text
    assert '<html lang="ja">' in page.text and 'href="/static/sought.css"' in page.text
    assert desk.get("/static/sought.css").status_code == 200

    r = upload(desk, "sought.xml", write_pfif(SOUGHT))
    assert r.status_code == 200, r.text[:500]
    # 自動照合 counts only links the desk may see: the match to the 閲覧制限 resident is not even counted
    assert "捜索依頼 4件（新規 4・更新 0・変更なし 0）" in r.text and "自動照合 1件、要確認 2件" in r.text
    html = desk.get("/desk/sought").text
    ids = sought_ids(shelter.db_path)
    # 高橋 一郎 was found in the registry (the registry keeps the old form 髙)
    assert "髙橋 一郎" in row_of(html, "1001") and "自動照合" in row_of(html, "1001")
    # 閲覧制限: the desk sees that someone is sought, never whom the registry holds
    card = re.search(r'<article class="sought-card" id="sought-' + ids["yamazaki"] + r'".*?</article>', html, re.S)
    assert card and "照合候補はありません" in card.group(0)
    for secret in ("1004", "山﨑", "米崎町", "閲覧制限"):
        assert secret not in html, secret

    # confirm the evacuee for Ken Sasaki, reject the resident; both are new rows, then undo
    sasaki_ev = shelter.evacuee_ids["sasaki"]
    r = decide(desk, html, ids["sasaki"], "evacuee", sasaki_ev, "confirmed")
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/sought?done=confirmed")
    r = decide(desk, html, ids["sasaki"], "resident", "1007", "rejected")
    assert r.status_code == 303
    html = desk.get("/desk/sought?done=rejected").text
    assert "別人としました" in html
    assert "確認済み" in row_of(html, sasaki_ev) and "窓口" in row_of(html, sasaki_ev)
    assert 'data-target="1007"' not in html and "別人とした候補 1件" in html
    r = decide(desk, html, ids["sasaki"], "resident", "1007", "undo")
    assert r.status_code == 303
    html = desk.get("/desk/sought").text
    assert "要確認" in row_of(html, "1007")
    # deciding twice is explained, not an error page
    r = decide(desk, html, ids["sasaki"], "evacuee", sasaki_ev, "confirmed")
    assert r.status_code == 409 and "すでに確認済み" in r.text
    # the desk cannot decide a link it is not allowed to see
    before = counts(shelter.db_path)
    r = decide(desk, html, ids["yamazaki"], "resident", "1004", "confirmed")
    assert r.status_code == 404 and "1004" not in r.text
    assert counts(shelter.db_path) == before
    # every write needs the CSRF token
    r = desk.post(f"/desk/sought/{ids['sasaki']}/decide", data={"kind": "resident", "target_id": "1007",
                                                                 "decision": "confirmed"}, follow_redirects=False)
    assert r.status_code == 403
    assert desk.post("/desk/sought/relink", data={"csrf_token": csrf_of(html)}, follow_redirects=False).status_code == 303

    # what the desk was shown is in the audit log
    con = db_connect(shelter.db_path)
    views = [json.loads(s) for (s,) in con.execute(
        "SELECT subjects FROM audit_entry WHERE action = 'view' AND screen = 'GET /desk/sought'")]
    assert any(f"sought:{ids['takahashi']}" in v and "resident:1001" in v for v in views)
    assert not any("resident:1004" in v for v in views)
    decided = con.execute("SELECT user_name, role, subjects FROM audit_entry WHERE action = 'decide'").fetchall()
    assert len(decided) == 3 and decided[0][:2] == ("窓口", "desk")
    imported = con.execute("SELECT user_name, detail FROM audit_entry WHERE action = 'pfif_import'").fetchone()
    assert imported[0] == "窓口" and json.loads(imported[1])["file"] == "sought.xml"


def test_hq_sees_the_restricted_link_flagged(app, shelter) -> None:  # type: ignore[no-untyped-def]
    hq = client_as(app, "本部")
    assert upload(hq, "sought.xml", write_pfif(SOUGHT)).status_code == 200
    html = hq.get("/desk/sought").text
    row = row_of(html, "1004")
    assert "山﨑 花" in row and "閲覧制限・回答しないこと" in row and "米崎町" in row


def test_a_bad_file_is_explained_and_stores_nothing(app, shelter) -> None:  # type: ignore[no-untyped-def]
    desk = client_as(app, "窓口")
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
            b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4"/>')
    for name, content, words in [("bomb.xml", bomb, "DTD・実体宣言を含む XML は受け付けません"),
                                 ("cut.xml", (DATA / "test.pfif-1.4.xml").read_bytes()[:1500], "cut.xml 31行目"),
                                 ("meibo.csv", "受付番号,氏名\n1,岩手\n".encode(), "person_record_id の見出し行がありません")]:
        r = upload(desk, name, content)
        assert r.status_code == 422 and "何も取り込んでいません" in r.text and words in r.text, r.text[:300]
        assert 'id="sought-problems"' in r.text
    assert counts(shelter.db_path) == {"soughtperson": 0, "soughtnote": 0, "soughtlink": 0}
    # Person Finder's own CSV sample imports, with the note about its surplus cell
    r = upload(desk, "sample-import.csv", (DATA / "sample-import.csv").read_bytes())
    assert r.status_code == 200 and "取り込んでいません（記録には残しています）" in r.text
    assert "Test Person" in desk.get("/desk/sought?q=test").text
    assert "Test Person" not in desk.get("/desk/sought?only=linked").text


def test_roles(app) -> None:  # type: ignore[no-untyped-def]
    staff = client_as(app, "佐藤")
    assert staff.get("/desk/sought").status_code == 403
    anon = TestClient(app)
    r = anon.get("/desk/sought", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/switch")
    desk = client_as(app, "窓口")
    assert 'href="/desk/sought"' in desk.get("/dashboard").text  # in the desk's menu
