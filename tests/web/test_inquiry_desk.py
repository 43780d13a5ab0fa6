"""The 安否照会 desk over HTTP as a desk user: only allowed items on the page, one identical
"no information" page for not found / refused / protected, the log for HQ, the audit chain."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Inquiry
from tests.conftest import Cli
from tests.web.helpers import api_csrf, build_shelter, csrf_of, login, shelter_app

warnings.filterwarnings("ignore", category=DeprecationWarning)

ADDR = "岩手県陸前高田市高田町字館の沖12-3"
PHONE = "090-1111-2222"
INQUIRER = {"inquirer_name": "岩手 太郎", "inquirer_address": "盛岡市内丸1-1", "inquirer_phone": "019-000-0000",
            "id_proof": "運転免許証"}


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.db import open_shelter_db
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    with Session(engine, expire_on_commit=False) as s:
        sh.evacuee_ids["takahashi"] = register(s, EvacueeInput(
            name="髙橋 一郎", name_kana="タカハシ イチロウ", birth_date="S45.3.1", sex="男", address=ADDR, phone=PHONE,
            injury="足の骨折", injury_state="軽傷", current_location="体育館A", nationality="日本",
            consent_acquaintances=True, consent_public=False), by="佐藤").id
        sh.evacuee_ids["kyoko"] = register(s, EvacueeInput(
            name="髙橋 京子", birth_date="S47.11.3", sex="女", address=ADDR, consent_relatives=False), by="佐藤").id
        hana = register(s, EvacueeInput(name="山﨑 花", birth_date="1999-12-31", sex="女", address="米崎町2-1",
                                        phone="080-9999-0000", consent_relatives=True, consent_acquaintances=True,
                                        consent_public=True), by="佐藤")
        staff_decide(s, hana.id, "confirmed", "1004", by="佐藤")  # 宛名番号 1004 carries 閲覧制限
        sh.evacuee_ids["hana"] = hana.id
        s.commit()
    engine.dispose()
    return sh


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path)


@pytest.fixture
def desk(app):  # type: ignore[no-untyped-def]
    c = TestClient(app)
    login(c, "窓口")
    return c


def ask(client, **fields: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/desk/inquiry").text)
    return client.post("/desk/inquiry", data={"csrf_token": token, **INQUIRER, **fields}, follow_redirects=True)


def main_of(html: str) -> str:
    m = re.search(r"<main.*?</main>", html, re.S)
    assert m
    return m.group(0)


def items_on(html: str) -> list[str]:
    return re.findall(r'<td class="item-no">(.)</td>', html)


def test_relative_hears_every_item(desk) -> None:  # type: ignore[no-untyped-def]
    r = ask(desk, relationship="同居の親族", sought_name="高橋 一郎", sought_birth="S45.3.1")
    assert r.status_code == 200 and re.search(r"/desk/inquiry/[0-9A-Z]{26}$", str(r.url))
    assert items_on(r.text) == list("①②③④⑤⑥⑦⑧⑨⑩⑪")
    for value in ("髙橋 一郎", "タカハシ イチロウ", "1970年3月1日", "男", ADDR, "日本", "足の骨折、軽傷", "体育館A", PHONE):
        assert value in r.text, value
    assert "お伝えできる安否情報は次のとおりです" in r.text


def test_acquaintance_hears_name_identification_and_injury_only(desk) -> None:  # type: ignore[no-untyped-def]
    r = ask(desk, relationship="知人", sought_name="たかはし いちろう", sought_birth="1970-03-01")
    assert r.status_code == 200
    assert items_on(r.text) == ["①", "⑦", "⑧"]
    assert "髙橋 一郎" in r.text and "該当する" in r.text
    for secret in (ADDR, "高田町", PHONE, "1970年", "骨折", "軽傷", "体育館", "タカハシ", "日本", "男"):
        assert secret not in main_of(r.text), secret


def test_other_inquirer_needs_explicit_consent(desk) -> None:  # type: ignore[no-untyped-def]
    r = ask(desk, relationship="その他", sought_name="髙橋 一郎", sought_birth="S45.3.1")  # ⑭ refused
    assert items_on(r.text) == [] and "お答えできる安否情報はありません" in r.text
    r = ask(desk, relationship="その他", sought_name="山﨑 花", sought_birth="1999-12-31")  # ⑭ given, but 閲覧制限
    assert items_on(r.text) == [] and "080-9999-0000" not in r.text


def test_not_found_refused_and_protected_look_exactly_alike(desk) -> None:  # type: ignore[no-untyped-def]
    pages = {
        "restricted": ask(desk, relationship="同居の親族", sought_name="山﨑 花", sought_birth="1999-12-31"),
        "not_found": ask(desk, relationship="同居の親族", sought_name="岩手 花子", sought_birth="1999-12-31"),
        "refused": ask(desk, relationship="同居の親族", sought_name="髙橋 京子", sought_birth="S47.11.3"),  # ⑫ refused
    }
    names = {"restricted": "山﨑 花", "not_found": "岩手 花子", "refused": "髙橋 京子"}
    bodies = set()
    for kind, r in pages.items():
        assert r.status_code == 200, kind
        html = r.text.replace(names[kind], "〈氏名〉")
        html = re.sub(r'(name="csrf[-_]token" (?:value|content)=")[^"]+"', r'\1〈token〉"', html)
        bodies.add(html.encode("utf-8"))
    assert len(bodies) == 1, "the answers tell the reasons apart"
    with Session(desk.app.state.engine) as s:
        got = {i.sought_name: i.outcome for i in s.exec(select(Inquiry))}
    assert got == {"山﨑 花": "restricted", "岩手 花子": "not_found", "髙橋 京子": "refused"}
    # the JSON API answers alike too, apart from the inquiry id
    token = api_csrf(desk)
    answers = []
    for name, birth in (("山﨑 花", "1999-12-31"), ("岩手 花子", "1999-12-31"), ("髙橋 京子", "S47.11.3")):
        j = desk.post("/api/inquiries", headers={"X-CSRF-Token": token},
                      json={**INQUIRER, "relationship": "同居の親族", "sought_name": name, "sought_birth": birth}).json()
        assert j.pop("id")
        answers.append(j)
    assert answers[0] == answers[1] == answers[2] == {"needs_detail": False, "items": [],
                                                      "answer_text": answers[0]["answer_text"]}


def test_unclear_person_asks_for_detail_then_answers(app, desk) -> None:  # type: ignore[no-untyped-def]
    from app.services.roster import EvacueeInput, register

    with Session(app.state.engine) as s:
        register(s, EvacueeInput(name="髙橋 一郎", birth_date="S45.3.1", address="大船渡市盛町1"), by="佐藤")
        s.commit()
    r = ask(desk, relationship="知人", sought_name="髙橋 一郎", sought_birth="S45.3.1")
    assert r.status_code == 200 and 'id="needs-detail"' in r.text and 'id="give_up"' in r.text
    assert 'value="髙橋 一郎"' in r.text  # what was typed stays in the form
    assert "大船渡" not in r.text and items_on(r.text) == []
    r = ask(desk, relationship="知人", sought_name="髙橋 一郎", sought_birth="S45.3.1", sought_address="陸前高田市高田町")
    assert items_on(r.text) == ["①", "⑦", "⑧"]
    r = ask(desk, relationship="知人", sought_name="髙橋 一郎", sought_birth="S45.3.1", give_up="1")
    assert items_on(r.text) == [] and "お答えできる安否情報はありません" in r.text


def test_missing_fields_are_explained_next_to_them(desk) -> None:  # type: ignore[no-untyped-def]
    token = csrf_of(desk.get("/desk/inquiry").text)
    r = desk.post("/desk/inquiry", data={"csrf_token": token, "sought_name": "髙橋 一郎"})
    assert r.status_code == 422
    errors = dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error"[^>]*>([^<]*)<', r.text))
    assert set(errors) == {"inquirer_name", "inquirer_address", "id_proof", "relationship", "sought_birth"}
    assert 'value="髙橋 一郎"' in r.text


def test_log_for_hq_audit_chain_and_roles(app, shelter, desk, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ask(desk, relationship="同居の親族", sought_name="高橋 一郎", sought_birth="S45.3.1")
    ask(desk, relationship="知人", sought_name="高橋 一郎", sought_birth="S45.3.1")
    ask(desk, relationship="その他", sought_name="高橋 一郎", sought_birth="S45.3.1")
    ask(desk, relationship="同居の親族", sought_name="山﨑 花", sought_birth="1999-12-31")
    ask(desk, relationship="同居の親族", sought_name="岩手 花子", sought_birth="1999-12-31")
    assert desk.get("/desk/inquiry/log").status_code == 403  # the desk never sees the real reasons
    assert desk.get("/api/inquiries").status_code == 403
    assert "照会の記録を見る" not in desk.get("/desk/inquiry").text
    hq = TestClient(app)
    login(hq, "本部")
    page = hq.get("/desk/inquiry/log")
    assert page.status_code == 200
    outcomes = re.findall(r'<span class="outcome">([^<]*)</span>', page.text)
    assert outcomes == ["該当者なし", "閲覧制限", "同意なし", "回答した", "回答した"]  # newest first
    log = hq.get("/api/inquiries").json()["inquiries"]
    assert [x["outcome"] for x in log][::-1] == ["answered", "answered", "refused", "restricted", "not_found"]
    assert log[-1]["items"] == list(range(1, 12)) and log[-2]["items"] == [1, 7, 8]
    assert hq.get("/desk/inquiry/log?outcome=restricted").text.count('<span class="outcome">') == 1
    # every inquiry has its audit entry and the chain verifies, through the real CLI
    from app.audit_models import AuditEntry
    from app.services import audit

    with Session(app.state.engine) as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == "inquiry")).all()
        assert sorted(audit.as_dict(e)["detail"]["inquiry_id"] for e in entries) == sorted(x["id"] for x in log)
    code, out, err = Cli(shelter.db_path)("audit", "verify")
    assert code == 0, out + err


def test_desk_pages_label_every_field(app, desk) -> None:  # type: ignore[no-untyped-def]
    from tests.web.test_screens import _Fields

    hq = TestClient(app)
    login(hq, "本部")
    ask(hq, relationship="知人", sought_name="高橋 一郎", sought_birth="S45.3.1")
    token = csrf_of(desk.get("/desk/inquiry").text)
    pages = [desk.get("/desk/inquiry").text, hq.get("/desk/inquiry/log").text,
             desk.post("/desk/inquiry", data={"csrf_token": token, "sought_name": "x"}).text]
    for html in pages:
        p = _Fields()
        p.feed(html)
        assert p.lang == "ja"
        assert not [fid for fid, wrapped in p.fields if not wrapped and fid not in p.ids_labelled]
        assert "<script>" not in html and "style=" not in html  # the CSP forbids inline code


@pytest.mark.browser
@pytest.mark.slow
def test_desk_in_a_real_browser(shelter) -> None:  # type: ignore[no-untyped-def]
    from tests.web.server import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, serve

    if not CHROMIUM.exists():
        pytest.skip("!!! /usr/bin/chromium is missing: browser test NOT RUN !!!")
    from playwright.sync_api import expect, sync_playwright

    with serve(shelter.db_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(locale="ja-JP")
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        # CSP violations are console errors; the favicon's 404 is one too but never reaches "response"
        page.on("console", lambda m: problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}/switch")
        page.locator(".tile-name", has_text="窓口").click()
        expect(page.locator("#pin")).to_be_focused()
        page.keyboard.type("3333")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/dashboard")
        page.get_by_role("link", name="安否照会").click()
        page.wait_for_url(f"{base}/desk/inquiry")
        expect(page.locator("#inquirer_name")).to_be_focused()
        page.keyboard.insert_text("岩手 太郎")
        page.fill("#inquirer_address", "盛岡市内丸1-1")
        page.get_by_label("マイナンバーカード").check()
        page.get_by_label("知人").check()
        page.fill("#sought_name", "たかはし いちろう")
        page.fill("#sought_birth", "S45.3.1")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/desk/inquiry/*")
        expect(page.locator("#answer-items td.item-no")).to_have_text(["①", "⑦", "⑧"])
        expect(page.locator("#next-inquiry")).to_be_focused()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "inquiry_answer.png"), full_page=True)
        assert ADDR not in page.content() and PHONE not in page.content()
        browser.close()
    assert not problems, problems
