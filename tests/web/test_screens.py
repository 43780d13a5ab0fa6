"""The screens through HTTP: intake with messages next to fields, duplicates, review, roster actions,
what lands in the outbox, and the rules every page follows (labels, lang="ja", no outside host)."""

from __future__ import annotations

import json
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Evacuee, MatchDecision, StayEvent
from sync.models import OutboxEvent
from tests.web.helpers import api_csrf, build_shelter, csrf_of, login, shelter_app

warnings.filterwarnings("ignore", category=DeprecationWarning)
UI = Path(__file__).resolve().parents[2] / "kiosk_ui"


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path)


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path)


@pytest.fixture
def staff(app):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    login(c, "佐藤")
    return c


def outbox_types(app) -> list[str]:  # type: ignore[no-untyped-def]
    with Session(app.state.engine) as s:
        return [e.type for e in s.exec(select(OutboxEvent).order_by(OutboxEvent.epoch, OutboxEvent.seq))]


def intake(client, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/intake").text)
    return client.post("/intake", data={"csrf_token": token, **fields}, follow_redirects=False)


def test_bad_birth_date_is_explained_next_to_the_field(staff) -> None:  # type: ignore[no-untyped-def]
    r = intake(staff, {"address": "高田町", "m-0-name": "岩手 太郎", "m-0-birth_date": "S45.13.1",
                       "m-1-name": "岩手 花子", "m-1-birth_date": "H2.4.5", "m-1-sex": "女"})
    assert r.status_code == 422
    html = r.text
    err = re.search(r'<input type="text" id="m-0-birth_date"[^>]*>.*?<p class="field-error" id="m-0-birth_date-error"[^>]*>([^<]*)<',
                    html, re.S)
    assert err and err.group(1) == "生年月日: 13月はありません"
    assert 'aria-invalid="true"' in html
    assert 'value="岩手 花子"' in html and 'value="高田町"' in html  # nothing typed is lost


def test_household_registration(app, staff) -> None:  # type: ignore[no-untyped-def]
    r = intake(staff, {
        "address": "陸前高田市高田町字館の沖12-3", "contact": "090-0000-1111", "current_location": "体育館", "pets": "犬1匹",
        "m-0-name": "高橋 一郎", "m-0-name_kana": "たかはし いちろう", "m-0-birth_date": "S45.3.1", "m-0-sex": "男",
        "m-0-relationship": "世帯主", "m-0-resident_id": "1001", "m-0-consent_relatives": "yes",
        "m-0-consent_public": "no", "m-0-injury": "足の骨折", "m-0-injury_state": "軽傷",
        "m-1-name": "高橋 京子", "m-1-birth_date": "昭和47年11月3日", "m-1-sex": "女", "m-1-care-allergy": "1",
        "m-1-allergy_detail": "卵", "m-1-care-pregnant": "1",
        "m-3-name": "高橋 翔", "m-3-birth_date": "H17.4.5", "m-3-sex": "男", "m-3-nationality": "日本",
        "m-2-name": "", "m-2-birth_date": "",  # an added but empty member is dropped
    })
    assert r.status_code == 303, r.text[:500]
    key = r.headers["location"].split("done=")[1]
    with Session(app.state.engine) as s:
        evs = list(s.exec(select(Evacuee).where(Evacuee.household_key == key).order_by(Evacuee.created_at)))
        assert [e.name_raw for e in evs] == ["高橋 一郎", "高橋 京子", "高橋 翔"]
        head, wife, son = evs
        assert head.address_raw == wife.address_raw == "陸前高田市高田町字館の沖12-3"
        assert head.consent_relatives is True and head.consent_public is False and head.consent_acquaintances is None
        assert head.injury == "足の骨折" and head.pets == "犬1匹" and head.created_by == "佐藤"
        assert wife.care_flags == {"allergy": True, "allergy_detail": "卵", "pregnant": True}
        assert str(wife.birth_date) == "1972-11-03" and son.nationality == "日本"
        d = s.exec(select(MatchDecision).where(MatchDecision.evacuee_id == head.id)).one()
        assert (d.decision, d.resident_id, d.by_user) == ("confirmed", "1001", "佐藤")
        assert len(list(s.exec(select(StayEvent).where(StayEvent.evacuee_id == son.id)))) == 1
    types = outbox_types(app)
    assert types.count("evacuee.registered") == 5 and "match.decided" in types  # 2 fixtures + 3 here
    page = staff.get(r.headers["location"]).text
    assert "登録しました（3人）" in page


def test_duplicate_warning_then_confirmation(app, staff) -> None:  # type: ignore[no-untyped-def]
    fields = {"m-0-name": "渡辺　稔", "m-0-birth_date": "1955-05-05", "m-0-sex": "男"}
    api = staff.get("/api/evacuees/duplicates", params={"name": "渡辺稔", "birth": "S30.5.5"}).json()
    assert len(api["duplicates"]) == 1
    r = intake(staff, fields)
    assert r.status_code == 409 and "すでに在所中の方に同じ氏名・生年月日の方がいます" in r.text
    assert 'name="confirm_duplicates"' in r.text
    r = intake(staff, {**fields, "confirm_duplicates": "1"})
    assert r.status_code == 303


def test_search_endpoint_returns_reasons_and_is_audited(app, staff) -> None:  # type: ignore[no-untyped-def]
    r = staff.get("/api/search", params={"name": "高橋京子", "birth": "S47.11.3"})
    assert r.status_code == 200
    top = r.json()["candidates"][0]
    assert top["resident_id"] == "1002" and top["name"] == "髙橋 京子"
    assert any(p["field_ja"] == "生年月日" and p["level_ja"] == "一致" for p in top["reason_parts"])
    from app.services import audit

    with Session(app.state.engine) as s:
        e = audit.query(s, audit.AuditFilter(action="search"))[0]
        assert "resident:1002" in e.subjects and "高橋京子" in e.detail


def test_restricted_address_hidden_from_staff_but_not_from_hq(app) -> None:  # type: ignore[no-untyped-def]
    staff, hq = TestClient(app), TestClient(app)
    login(staff, "佐藤")
    login(hq, "本部")
    q = {"name": "山崎 花", "birth": "1999-12-31"}
    s_c = staff.get("/api/search", params=q).json()["candidates"][0]
    h_c = hq.get("/api/search", params=q).json()["candidates"][0]
    assert s_c["resident_id"] == h_c["resident_id"] == "1004"
    assert s_c["address"] == "（閲覧制限）" and "米崎町" in h_c["address"]


def test_review_screen_and_decisions(app, shelter, staff) -> None:  # type: ignore[no-untyped-def]
    from app.services.reconcile import reconcile_all

    reconcile_all(app.state.engine)
    page = staff.get("/review").text
    assert "1 / 2件" in page and "渡邉 稔" in page and "一致の理由" in page
    ev = re.search(r'id="review" data-evacuee="([^"]+)"', page).group(1)
    token = csrf_of(page)
    r = staff.post(f"/review/{ev}", data={"csrf_token": token, "decision": "confirmed", "resident_id": "1006"},
                   follow_redirects=False)
    assert r.headers["location"] == "/review?done=confirmed"
    page = staff.get(r.headers["location"]).text
    assert "確定しました" in page and "1 / 1件" in page and ev not in page
    api = staff.get("/api/review").json()
    assert api["total"] == 1 and api["items"][0]["candidates"][0]["resident_id"] == "1007"
    other = api["items"][0]["evacuee"]["id"]
    r = staff.post(f"/api/evacuees/{other}/decision", json={"decision": "rejected", "resident_id": "1007"},
                   headers={"X-CSRF-Token": api_csrf(staff)})
    assert r.status_code == 200
    assert "照合確認待ちの方はいません" in staff.get("/review").text


def test_checkout_transfer_checkin_and_edit(app, shelter, staff) -> None:  # type: ignore[no-untyped-def]
    ev = shelter.evacuee_ids["watanabe"]
    page = staff.get(f"/roster/{ev}").text
    token = csrf_of(page)
    r = staff.post(f"/roster/{ev}/transfer", data={"csrf_token": token, "destination": ""})
    assert r.status_code == 422 and "移動先を選んでください" in r.text
    r = staff.post(f"/roster/{ev}/transfer", data={"csrf_token": token, "destination": "第二中学校"}, follow_redirects=False)
    assert r.status_code == 303
    page = staff.get(r.headers["location"]).text
    assert "移動を記録しました" in page and "第二中学校" in page
    r = staff.post(f"/roster/{ev}/checkout", data={"csrf_token": token})
    assert r.status_code == 422 and "在所していません" in r.text
    staff.post(f"/roster/{ev}/checkin", data={"csrf_token": token})
    staff.post(f"/roster/{ev}/checkout", data={"csrf_token": token, "destination": "自宅"})
    detail = staff.get(f"/api/evacuees/{ev}").json()
    assert [s["kind"] for s in detail["stays"]] == ["check_in", "transfer", "check_in", "check_out"]
    assert detail["evacuee"]["status"] == "left"
    # edit: bad date explained, good edit re-parsed and sent to the hub with old and new values
    r = staff.post(f"/roster/{ev}/edit", data={"csrf_token": token, "name": "渡辺 稔", "birth_date": "昭和30年2月30日"})
    assert r.status_code == 422 and "1955年2月30日はありません（2月は28日まで）" in r.text
    r = staff.post(f"/roster/{ev}/edit", data={"csrf_token": token, "name": "渡邉 稔", "name_kana": "わたなべ みのる",
                                               "birth_date": "S30.5.6", "sex": "男", "address": "高田町2",
                                               "care-elderly": "1", "consent_relatives": "yes",
                                               "seen-name": "渡辺 稔"}, follow_redirects=False)
    assert r.status_code == 303
    with Session(app.state.engine) as s:
        e = s.get(Evacuee, ev)
        assert e.name_raw == "渡邉 稔" and str(e.birth_date) == "1955-05-06" and e.care_flags == {"elderly": True}
        events = {o.type: json.loads(o.payload) for o in s.exec(select(OutboxEvent))}
    assert events["evacuee.updated"]["changes"]["name"] == {"old": "渡辺 稔", "new": "渡邉 稔"}
    assert events["consent.changed"]["consents"]["relatives"] is True
    assert outbox_types(app).count("stay.recorded") == 5  # 2 check-ins at registration + 3 here


def test_roster_filters_print_and_export(app, shelter, staff) -> None:  # type: ignore[no-untyped-def]
    assert "渡辺 稔" in staff.get("/roster", params={"q": "わたなべ"}).text  # hiragana finds the katakana reading
    assert "渡辺 稔" not in staff.get("/roster", params={"q": "佐々木"}).text
    page = staff.get("/roster/print").text
    assert "避難者名簿" in page and "print.css" in page and "ささき けん" in page
    assert staff.get("/api/evacuees/export.csv").status_code == 403  # staff may not export
    hq = TestClient(app)
    login(hq, "本部")
    r = hq.get("/api/evacuees/export.csv")
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode()) and "渡辺 稔" in r.text


def test_roster_file_import_shows_rejects_in_japanese(app, staff) -> None:  # type: ignore[no-untyped-def]
    token = csrf_of(staff.get("/roster/import").text)
    body = "番号,名前,ふりがな,生年月日,性別\r\nR1,岩手 一,,S50.1.1,男\r\nR2,岩手 二,,S50.2.30,男\r\nR3,,,,\r\n".encode("cp932")
    r = staff.post("/roster/import", data={"csrf_token": token}, files={"file": ("避難者.csv", body, "text/csv")})
    assert r.status_code == 200
    assert "3行のうち 2人を登録しました" in r.text and "氏名もふりがなもない 1行" in r.text
    flags = r.text[r.text.index('id="flags"'):]
    assert "岩手 二" in flags and "3行目" in flags and "S50.2.30" in flags and "30日はその月にありません" in flags
    assert "4" in r.text[r.text.index('id="rejects"'):r.text.index('id="flags"')]
    # the flag stays on the import screen until someone has checked it
    page = staff.get("/roster/import").text
    assert "S50.2.30" in page[page.index('id="flags"'):]
    action = re.search(r'action="(/roster/flags/[^"]+/resolve)"', page)
    assert action
    r = staff.post(action.group(1), data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert 'id="flags"' not in staff.get("/roster/import").text
    with Session(app.state.engine) as s:
        ev = s.exec(select(Evacuee).where(Evacuee.external_key == "R2")).one()
        assert (ev.birth_raw, ev.birth_date, ev.birth_kind) == ("S50.2.30", None, "unknown")


class _Fields(HTMLParser):
    """Every visible input/select and whether a label names it."""

    def __init__(self) -> None:
        super().__init__()
        self.ids_labelled: set[str] = set()
        self.fields: list[tuple[str, bool]] = []
        self._in_label = 0
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        if tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.ids_labelled.add(a["for"] or "")
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.fields.append((a.get("id") or "", self._in_label > 0 or bool(a.get("aria-label"))))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._in_label -= 1


@pytest.mark.parametrize("who, paths", [
    ("管理", ["/dashboard", "/intake", "/review", "/roster", "/roster/import", "/admin/users", "/admin/registry",
             "/admin/audit", "/admin/audit/anomalies", "/roster/{ev}", "/roster/{ev}/edit"]),
    (None, ["/switch"]),
])
def test_every_field_has_a_label_and_pages_are_japanese(app, shelter, who, paths) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    if who:
        login(client, who)
    for path in paths:
        html = client.get(path.replace("{ev}", shelter.evacuee_ids["watanabe"])).text
        p = _Fields()
        p.feed(html)
        assert p.lang == "ja", path
        unlabelled = [fid for fid, wrapped in p.fields if not wrapped and fid not in p.ids_labelled]
        assert not unlabelled, f"{path}: fields without a label: {unlabelled}"


def test_ui_never_references_an_outside_host() -> None:
    offenders = []
    for f in UI.rglob("*"):
        if f.is_file() and f.suffix in (".html", ".js", ".css"):
            text = f.read_text(encoding="utf-8")
            if f.parent.name == "vendor":  # bundled unmodified (NOTICE): its line comments may cite a page
                text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
            for m in re.finditer(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I):
                offenders.append(f"{f.relative_to(UI)}: {m.group(0)}")
    assert not offenders, offenders


def test_registry_upload_runs_in_the_background_with_progress(app, shelter) -> None:  # type: ignore[no-untyped-def]
    import time

    from tests.conftest import write_csv
    from tests.web.helpers import HEADER, REGISTRY

    admin = TestClient(app)
    login(admin, "管理")
    token = csrf_of(admin.get("/admin/registry").text)
    newer = write_csv(shelter.db_path.parent / "juki2.csv", [HEADER, *REGISTRY,
                      ["1009", "H7", "岩手", "一", "イワテ", "ハジメ", "", "S60.1.1", "1", "世帯主", "", "高田町", ""]])
    r = admin.post("/admin/registry", data={"csrf_token": token, "as_of": "2026-11-20"},
                   files={"file": ("juki2.csv", newer.read_bytes(), "text/csv")}, follow_redirects=False)
    assert r.status_code == 303
    job_id = r.headers["location"].split("job=")[1]
    for _ in range(100):
        job = admin.get(f"/api/registry/jobs/{job_id}", headers={"X-Anpi-Poll": "1"}).json()
        if job["status"] != "running":
            break
        time.sleep(0.05)
    assert job["status"] == "done" and job["rows"] == 9, job
    page = admin.get(r.headers["location"]).text
    assert "取り込みました: 9人" in page and "2026-11-20" in page
    # a file with a bad row is refused whole, with the line and field in Japanese
    bad = write_csv(shelter.db_path.parent / "bad.csv", [HEADER, REGISTRY[0], ["", "H9", "山田", "", "", "", "", "", "", "", "", "", ""]])
    r = admin.post("/api/registry/import", headers={"X-CSRF-Token": api_csrf(admin)},
                   files={"file": ("bad.csv", bad.read_bytes(), "text/csv")})
    assert r.status_code == 202
    for _ in range(100):
        job = admin.get(f"/api/registry/jobs/{r.json()['id']}").json()
        if job["status"] != "running":
            break
        time.sleep(0.05)
    assert job["status"] == "failed" and "3行目" in job["problems"][0] and "宛名番号" in job["problems"][0]
    # in a disaster the admin may load the good rows: the snapshot is shown as incomplete
    token = csrf_of(admin.get("/admin/registry").text)
    r = admin.post("/admin/registry", data={"csrf_token": token, "as_of": "2026-11-21", "quarantine": "1"},
                   files={"file": ("bad.csv", bad.read_bytes(), "text/csv")}, follow_redirects=False)
    assert r.status_code == 303
    job_id = r.headers["location"].split("job=")[1]
    for _ in range(100):
        job = admin.get(f"/api/registry/jobs/{job_id}", headers={"X-Anpi-Poll": "1"}).json()
        if job["status"] != "running":
            break
        time.sleep(0.05)
    assert job["status"] == "done" and job["snapshot"]["quarantined"] == 1, job
    page = admin.get(r.headers["location"]).text
    assert "読めない 1行を除いたため、この台帳は不完全です" in page
    assert "bad.csv 3行目 「宛名番号」: 宛名番号が空です" in page
    assert "<strong>不完全</strong>（読めない 1行を除外）" in page
    reports = list(shelter.db_path.parent.glob("bad.quarantine-*.csv"))
    assert len(reports) == 1 and "宛名番号が空です" in reports[0].read_text(encoding="utf-8-sig")
