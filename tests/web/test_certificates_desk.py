"""The certificate desk over real HTTP (TestClient on the real app and a real SQLite file), plus one
short browser run: find the applicant, see the household, issue, download the PDF, print view,
reissue, void (reason required), and the manual path.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.web.helpers import ADDR, build_shelter, csrf_of, login, shelter_app
from tests.web.server import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, serve

warnings.filterwarnings("ignore", category=DeprecationWarning)

CAUSE = "令和8年11月20日の地震"


def pdf_text(data: bytes) -> str:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return "".join("".join(p.extract_text().split()) for p in reader.pages).replace("\u3000", "")


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path)


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path, auto_lock_seconds=3600)


def desk_client(app: Any, name: str = "窓口") -> TestClient:
    client = TestClient(app)
    login(client, name)
    return client


def audit_actions(app: Any, subject: str) -> list[str]:
    from app.services import audit

    with Session(app.state.engine) as s:
        return [e.action for e in audit.query(s, audit.AuditFilter(subject=subject), newest_first=False)]


def issue(client: TestClient, page_html: str, **fields: str) -> Any:
    data = {"csrf_token": csrf_of(page_html), **fields}
    return client.post("/desk/certificates", data=data, follow_redirects=False)


def test_desk_flow_issue_print_reissue_void(app) -> None:  # type: ignore[no-untyped-def]
    client = desk_client(app)
    r = client.get("/desk/certificates")
    assert r.status_code == 200 and 'href="/desk/certificates" accesskey="c" aria-current="page"' in r.text
    assert "発行した証明書はありません" in r.text

    # 1. search the registry the way the intake screen does (by name and reading)
    r = client.get("/desk/certificates/new", params={"name": "高橋 京子", "kana": "タカハシ キョウコ"})
    assert r.status_code == 200
    assert 'href="/desk/certificates/new?resident_id=1002"' in r.text
    assert audit_actions(app, "resident:1002") == ["search"]

    # 2. the household: head from the registry, all members, no confirmed match yet
    r = client.get("/desk/certificates/new", params={"resident_id": "1002"})
    page = r.text
    assert r.status_code == 200 and "髙橋　一郎" in page and ADDR in page
    for who in ("髙橋　京子", "髙橋　翔", "昭和45年3月1日", "平成17年4月5日"):
        assert who in page
    assert "照合が確定していません" in page and 'id="issue-button"' in page

    # 3. issue: without an identity check the desk is told what to do, and nothing is stored
    r = issue(client, page, resident_id="1002", kind="risai", damage="chukibo", cause=CAUSE, members="1")
    assert r.status_code == 422 and 'id="identity-error"' in r.text and "本人確認書類で確認したうえで" in r.text
    assert f'value="{CAUSE}"' in r.text  # what was typed stays in the form
    r = issue(client, page, resident_id="1002", kind="risai", damage="", cause=CAUSE, in_person="1")
    assert r.status_code == 422 and "被害の程度を選んでください" in r.text
    assert client.get("/desk/certificates").text.count('class="cert-row') == 0
    r = issue(client, page, resident_id="1002", kind="risai", damage="chukibo", cause=CAUSE, in_person="1",
              id_note="運転免許証", members="1")
    assert r.status_code == 303
    url = r.headers["location"]
    number = re.match(r"/desk/certificates/([^?]+)\?done=issued", url).group(1)  # type: ignore[union-attr]
    detail = client.get(url)
    assert detail.status_code == 200 and "発行しました" in detail.text and number in detail.text
    assert "中規模半壊" in detail.text and "窓口で本人確認（運転免許証）" in detail.text

    # 4. PDF and print view
    r = client.get(f"/desk/certificates/{number}/pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert number in r.headers["content-disposition"]
    t = pdf_text(r.content)
    assert f"整理番号第{number}号" in t and "■中規模半壊" in t and "世帯主氏名髙橋一郎" in t and CAUSE in t
    r = client.get(f"/desk/certificates/{number}/print")
    assert r.status_code == 200 and "/static/print.css" in r.text and "/static/certificate.css" in r.text
    assert '<li class="marked">■ 中規模半壊</li>' in r.text and "□ 全壊" in r.text
    assert "上記のとおり相違ないことを証明します。" in r.text and "再発行" not in r.text

    # 5. reissue: same number, marked
    r = client.post(f"/desk/certificates/{number}/reissue", data={"csrf_token": csrf_of(detail.text), "reason": "紛失"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=reissued")
    detail = client.get(r.headers["location"])
    assert "再発行1回" in detail.text and "紛失" in detail.text
    assert "【再発行】第1回" in pdf_text(client.get(f"/desk/certificates/{number}/pdf").content)
    assert "【再発行】第1回" in client.get(f"/desk/certificates/{number}/print").text

    # 6. void: the reason is required, then nothing can be printed or reissued
    r = client.post(f"/desk/certificates/{number}/void", data={"csrf_token": csrf_of(detail.text), "reason": " "},
                    follow_redirects=False)
    assert r.status_code == 422 and "無効にする理由を入力してください" in r.text and 'id="void_reason-error"' in r.text
    r = client.post(f"/desk/certificates/{number}/void", data={"csrf_token": csrf_of(detail.text), "reason": "被害程度の再調査"},
                    follow_redirects=False)
    assert r.status_code == 303
    detail = client.get(r.headers["location"])
    assert "無効にしました" in detail.text and "被害程度の再調査" in detail.text and 'id="pdf-link"' not in detail.text
    assert client.get(f"/desk/certificates/{number}/pdf").status_code == 409
    assert client.get(f"/desk/certificates/{number}/print").status_code == 409
    r = client.post(f"/desk/certificates/{number}/reissue", data={"csrf_token": csrf_of(detail.text)}, follow_redirects=False)
    assert r.status_code == 409 and "再発行できません" in r.text

    listing = client.get("/desk/certificates", params={"status": "void"}).text
    assert number in listing and "無効" in listing
    acts = audit_actions(app, f"certificate:{number}")
    assert acts.count("print") == 4 and {"certificate_issue", "certificate_reissue", "certificate_void"} <= set(acts)


def test_confirmed_match_is_enough_and_recorded(app, shelter) -> None:  # type: ignore[no-untyped-def]
    from app.services.reconcile import staff_decide

    with Session(app.state.engine) as s:
        staff_decide(s, shelter.evacuee_ids["watanabe"], "confirmed", "1006", by="佐藤")
        s.commit()
    client = desk_client(app)
    page = client.get("/desk/certificates/new", params={"resident_id": "1006"}).text
    assert "避難者名簿との照合（職員が確定）" in page
    r = issue(client, page, resident_id="1006", kind="hisai", cause=CAUSE, damage="zenkai")  # grade ignored for 被災
    assert r.status_code == 303, r.text[:500]
    detail = client.get(r.headers["location"]).text
    assert "被災証明書" in detail and "避難者名簿との照合（職員が確定）" in detail


def test_manual_path(app) -> None:  # type: ignore[no-untyped-def]
    client = desk_client(app)
    page = client.get("/desk/certificates/manual")
    assert page.status_code == 200 and "確認できない方のための発行です" in page.text
    token = csrf_of(page.text)
    r = client.post("/desk/certificates/manual", data={"csrf_token": token, "kind": "risai", "damage": "junhankai",
                                                       "cause": CAUSE, "name": "", "address": "竹駒町3"},
                    follow_redirects=False)
    assert r.status_code == 422 and "世帯主氏名を入力してください" in r.text and 'value="竹駒町3"' in r.text
    r = client.post("/desk/certificates/manual", data={"csrf_token": token, "kind": "risai", "damage": "junhankai",
                                                       "cause": CAUSE, "name": "𠮷田 太郎", "address": "竹駒町3",
                                                       "members": "𠮷田 花子, 妻, 2月30日"}, follow_redirects=False)
    assert r.status_code == 422 and "世帯構成員の1行目" in r.text
    r = client.post("/desk/certificates/manual", data={"csrf_token": token, "kind": "risai", "damage": "junhankai",
                                                       "cause": CAUSE, "name": "𠮷田 太郎", "address": "竹駒町3",
                                                       "members": "𠮷田 花子, 妻, S50.1.2"}, follow_redirects=False)
    assert r.status_code == 303
    detail = client.get(r.headers["location"]).text
    assert 'id="manual-tag"' in detail and "𠮷田 太郎" in detail and "𠮷→吉" in detail
    number = re.search(r'id="cert-number">([^<]+)<', detail).group(1)  # type: ignore[union-attr]
    t = pdf_text(client.get(f"/desk/certificates/{number}/pdf").content)
    assert "【手動】" in t and "台帳で確認できないため申請者の申告による" in t and "吉田太郎" in t and "■準半壊" in t
    printed = client.get(f"/desk/certificates/{number}/print").text
    assert 'id="p-manual"' in printed and "吉田 太郎" in printed
    assert "手動" in client.get("/desk/certificates").text


def test_restricted_household_for_desk_and_hq(app) -> None:  # type: ignore[no-untyped-def]
    desk = desk_client(app)
    page = desk.get("/desk/certificates/new", params={"resident_id": "1004"}).text
    assert "（閲覧制限）" in page and "米崎町" not in page and 'id="restricted-note"' in page
    assert 'id="issue-button"' not in page  # no form to fill in; a hand-made POST is refused below
    r = issue(desk, page, resident_id="1004", kind="hisai", cause=CAUSE, in_person="1")
    assert r.status_code == 403 and "本部または管理者" in r.text
    hq = desk_client(app, "本部")
    page = hq.get("/desk/certificates/new", params={"resident_id": "1004"}).text
    assert "米崎町" in page
    assert issue(hq, page, resident_id="1004", kind="hisai", cause=CAUSE, in_person="1").status_code == 303


def test_duplicate_and_unknown_resident(app) -> None:  # type: ignore[no-untyped-def]
    client = desk_client(app)
    r = client.get("/desk/certificates/new", params={"resident_id": "9999"})
    assert r.status_code == 404 and "9999" in r.text
    page = client.get("/desk/certificates/new", params={"resident_id": "1001"}).text
    assert issue(client, page, resident_id="1001", kind="hisai", cause=CAUSE, in_person="1").status_code == 303
    page = client.get("/desk/certificates/new", params={"resident_id": "1003"}).text
    assert 'id="issued-before"' in page
    r = issue(client, page, resident_id="1003", kind="hisai", cause=CAUSE, in_person="1")
    assert r.status_code == 409 and "発行済み" in r.text


def test_staff_role_cannot_open_the_desk(app) -> None:  # type: ignore[no-untyped-def]
    client = desk_client(app, "佐藤")
    assert client.get("/desk/certificates").status_code == 403
    assert 'href="/desk/certificates"' not in client.get("/dashboard").text


# --- one short run in a real browser ---------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.xdist_group("browser")
@pytest.mark.skipif(not CHROMIUM.exists(), reason="!!! /usr/bin/chromium is missing: browser test NOT RUN !!!")
def test_browser_issue_and_print_view(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    sh = build_shelter(tmp_path)
    with serve(sh.db_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        # CSP violations are console errors; the favicon's 404 is one too but never reaches "response"
        page.on("console", lambda m: problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}/switch")
        page.locator(".tile-name", has_text="窓口").click()
        # the click handler empties and focuses the PIN field: typing before it runs loses digits
        expect(page.locator("#pin")).to_be_focused()
        page.keyboard.type("3333")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/dashboard")
        page.click('a[href="/desk/certificates"]')
        page.click("#new-link")
        page.fill("#s-name", "髙橋 一郎")
        page.keyboard.press("Enter")
        page.click('a[href="/desk/certificates/new?resident_id=1001"]')
        expect(page.locator("#members-table")).to_contain_text("髙橋　翔")
        page.check("#kind-hisai")
        expect(page.locator("#damage-set")).to_be_hidden()  # certificate.js: no grade on a 被災証明書
        page.check("#kind-risai")
        page.check("#damage-zenkai")
        page.fill("#cause", CAUSE)
        page.check("#in_person")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "certificate-new.png"), full_page=True)
        page.click("#issue-button")
        expect(page.locator("#cert-done")).to_have_text("発行しました")
        page.screenshot(path=str(SCREENSHOTS / "certificate-detail.png"), full_page=True)
        page.click("#print-link")
        expect(page.locator("#p-damage li.marked")).to_have_text("■ 全壊")
        page.screenshot(path=str(SCREENSHOTS / "certificate-print.png"), full_page=True)
        assert not problems, problems
        browser.close()
