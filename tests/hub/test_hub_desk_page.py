"""The hub's desk screen (窓口, GET /desk): 安否照会, 証明書 and 捜索依頼 (PFIF) in one Japanese page.

Real pieces: the hub as ``anpi hub serve`` composes it (``app.hub_app.create_app``) under uvicorn on
PostgreSQL as a role row-level security binds; 双葉町's registry backup at the hub; a shelter laptop
(SQLite) that registers an evacuee and syncs over HTTP; desk and HQ users with real tokens; Person
Finder's own sample file.  The page is driven in Debian's Chromium through Playwright: paste a desk
token → answer an inquiry about a relative (items) and about nobody known (the one "no information"
sentence) → issue a manual 被災証明書, save its PDF, void it (the reason first refused) → import PFIF
files and confirm a suggested link; an HQ token also sees the inquiry log.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from app.formats.pfif import PfifNote, PfifPerson, write_pfif
from app.hub_app import create_app
from app.services.inquiry_rules import SCRIPT_ANSWERED_HEAD, SCRIPT_ANSWERED_TAIL, SCRIPT_NO_INFORMATION
from app.services.roster import register
from sync import client
from sync.hub import registry, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, Town, add_towns, app_shelter, enroll, store_registry, typed_input, watch_page
from tests.sync.helpers import ThreadedServer, no_sleep
from tests.web.server import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "pfif"
SAMPLES = _SHARED if _SHARED.is_dir() else Path(__file__).resolve().parents[1] / "data" / "pfif"
SHELTER = "双葉中学校"


@dataclass
class Desk:
    engine: Any
    a: Town
    url: str
    http: httpx.Client
    desk_token: str
    relative: dict[str, str]  # registered at the shelter, consents to tell relatives
    sought: dict[str, str]  # a resident a family looks for through Person Finder
    tmp: Path


@pytest.fixture
def desk(pg_hub: PgHub, tmp_path: Path) -> Iterator[Desk]:
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, _b = add_towns(engine, tmp_path, residents=120, evacuees=3)
    store_registry(engine, key, a)
    desk_token = tenants.add_user(engine, A, "窓口 佐藤", "desk")[1]
    plain = [p for p in a.residents if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
             and not p["閲覧制限"]]
    relative, sought = plain[0], plain[5]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        laptop = app_shelter(tmp_path, SHELTER)
        enroll(laptop, engine, http, A, srv.url)
        with laptop.session() as s:
            register(s, typed_input(relative, nationality="日本", identifying_info="眼鏡", injury="なし",
                                    current_location="2階 教室", contact="090-1111-2222", consent_relatives=True),
                     by="受付", shelter_code=laptop.name)
            s.commit()
        res = client.sync_once(laptop.session, http=http, sleep=no_sleep)
        assert res.ok, res.as_dict()
        yield Desk(engine, a, srv.url, http, desk_token, relative, sought, tmp_path)
    engine.dispose()


def pdf_text(data: bytes) -> str:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return "".join("".join(p.extract_text().split()) for p in reader.pages).replace("\u3000", "")


# ---- plain HTTP -------------------------------------------------------------------------------------
def test_page_is_static_self_contained_and_linked_with_hq(desk: Desk) -> None:
    h = desk
    r = h.http.get("/desk")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "style-src 'self'" in csp
    assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    html = r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "no inline script (the CSP forbids it)"
    assert not re.search(r"\son[a-z]+=", html) and " style=" not in html, "no inline handlers or styles"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "nothing from another host"
    assert h.relative["氏"] + " " + h.relative["名"] not in html and h.relative["宛名番号"] not in html
    assert 'href="/hq"' in html and 'href="/desk"' in h.http.get("/hq").text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert "/static/hub_token.js" in assets and "/static/hub_desk.js" in assets
    assert assets.index("/static/hub_token.js") < assets.index("/static/hub_desk.js")
    for path in assets:
        s = h.http.get(path)
        kind = "text/javascript" if path.endswith(".js") else "text/css"
        assert s.status_code == 200 and s.headers["content-type"].startswith(kind), path
    assert "/static/hub_token.js" in h.http.get("/hq").text  # one token code for both screens
    r = h.http.post("/desk", data={"token": h.desk_token})  # a form sent without the script: nothing kept
    assert r.status_code == 200 and h.desk_token not in r.text and "set-cookie" not in r.headers


# ---- the browser ------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.xdist_group("browser")
@pytest.mark.skipif(not CHROMIUM.exists(), reason="!!! /usr/bin/chromium is missing: browser test NOT RUN !!!")
def test_browser_inquiry_certificate_pfif(desk: Desk) -> None:
    from playwright.sync_api import expect, sync_playwright

    h = desk
    base = h.url
    rel = h.relative
    rel_name = f"{rel['氏']} {rel['名']}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1366, "height": 900}, locale="ja-JP", accept_downloads=True)
            page = ctx.new_page()
            seen = watch_page(page, base)

            # --- log in with a desk token: the desks, not the log -------------------------------------
            page.goto(f"{base}/desk")
            expect(page.locator("#login")).to_be_visible()
            expect(page.locator("#desk")).to_be_hidden()
            page.locator("#token").fill(h.desk_token)
            page.locator("#token-submit").click()
            expect(page.locator("#desk")).to_be_visible()
            expect(page.locator("#who-role")).to_have_text("窓口")
            expect(page.locator("#who-name")).to_have_text("窓口 佐藤")
            expect(page.locator("#panel-inquiry")).to_be_visible()
            expect(page.locator("#inquiry-log-box")).to_be_hidden()  # the real outcomes are HQ's
            assert page.evaluate("sessionStorage.getItem('anpi-hub-token')") == h.desk_token
            assert ctx.cookies() == []

            # --- 安否照会 about a relative: the hub's field error first, then the items ----------------
            page.locator("#inq-inquirer_name").fill("双葉 次郎")
            page.locator("#inq-id_proof-1").check()  # 運転免許証
            page.locator("#inq-relationship-1").check()  # 同居の親族
            page.locator("#inq-sought_name").fill(rel_name)
            page.locator("#inq-sought_birth").fill(rel["生年月日"])
            page.locator("#inquiry-submit").click()  # no address of the inquirer
            expect(page.locator("#inq-inquirer_address-error")).to_have_text("照会者の住所を入力してください")
            expect(page.locator("#inq-inquirer_address")).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#inq-inquirer_address")).to_be_focused()
            page.locator("#inq-inquirer_address").fill("埼玉県加須市騎西1")
            page.locator("#inquiry-submit").click()
            expect(page.locator("#inquiry-answer")).to_be_visible()
            expect(page.locator("#inq-inquirer_address-error")).to_be_hidden()
            expect(page.locator("#script-head")).to_have_text(SCRIPT_ANSWERED_HEAD)
            expect(page.locator("#script-tail")).to_have_text(SCRIPT_ANSWERED_TAIL)
            expect(page.locator("#script-none")).to_be_hidden()
            expect(page.locator("#answer-rows tr")).to_have_count(11)  # ① … ⑪ for a relative
            first = page.locator("#answer-rows tr").first
            expect(first).to_contain_text("①")
            expect(first).to_contain_text(rel_name)
            expect(page.locator("#answer-rows")).to_contain_text(SHELTER)
            expect(page.locator("#answer-rows")).to_contain_text("090-1111-2222")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "hub_desk_inquiry.png"), full_page=True)

            # --- about nobody the hub knows: the one sentence ---------------------------------------
            page.locator("#next-inquiry").click()
            expect(page.locator("#inquiry-form")).to_be_visible()
            expect(page.locator("#inq-inquirer_name")).to_have_value("")
            page.locator("#inq-inquirer_name").fill("照会 花子")
            page.locator("#inq-inquirer_address").fill("大阪府大阪市北区中之島1-3-20")
            page.locator("#inq-id_proof-2").check()
            page.locator("#inq-relationship-3").check()  # 知人
            page.locator("#inq-sought_name").fill("存在 しない人")
            page.locator("#inq-sought_birth").fill("1901-01-01")
            page.locator("#inquiry-submit").click()
            expect(page.locator("#script-none")).to_have_text(SCRIPT_NO_INFORMATION)
            expect(page.locator("#answer-items")).to_be_hidden()
            expect(page.locator("#script-head")).to_be_hidden()

            # --- 証明書: a manual 被災証明書, its PDF, void with a reason --------------------------------
            page.locator("#tab-cert").click()
            expect(page.locator("#panel-cert")).to_be_visible()
            assert page.url.endswith("/desk#certificates")
            expect(page.locator("#cert-rows")).to_contain_text("該当する証明書はありません。")
            page.locator("#cert-issue-submit").click()  # registry path without a 宛名番号
            expect(page.locator("#cert-resident_id-error")).to_contain_text("宛名番号を入力してください")
            # the registry path: an applicant no shelter linked must show an ID at the desk
            page.locator("#cert-resident_id").fill(rel["宛名番号"])
            page.locator("#cert-damage-hankai").check()
            page.locator("#cert-cause").fill("令和8年11月20日の地震")
            page.locator("#cert-issue-submit").click()
            expect(page.locator("#cert-in_person-error")).to_contain_text("本人確認書類で確認したうえで")
            page.locator("#cert-in_person").check()
            page.locator("#cert-id_note").fill("運転免許証")
            page.locator("#cert-issue-submit").click()
            expect(page.locator("#cd-kind")).to_have_text("り災証明書")
            expect(page.locator("#cd-damage")).to_have_text("半壊")
            expect(page.locator("#cd-identity")).to_contain_text("窓口で本人確認（運転免許証）")
            expect(page.locator("#cd-resident")).to_contain_text(rel["宛名番号"])
            registry_number = page.locator("#cd-number").inner_text()
            expect(page.locator("#cert-in_person-error")).to_be_hidden()

            page.locator("#cert-mode-manual").check()
            expect(page.locator("#manual-warning")).to_be_visible()
            expect(page.locator("#cert-resident_id")).to_be_hidden()
            page.locator("#cert-kind-hisai").check()
            expect(page.locator("#cert-damage-box")).to_be_hidden()
            page.locator("#cert-name").fill("台帳外 一郎")
            page.locator("#cert-address").fill("福島県双葉郡双葉町大字長塚1")
            page.locator("#cert-members").fill("台帳外 花子, 妻, S50.1.2")
            page.locator("#cert-issue-submit").click()  # no 罹災原因: the hub names the field
            expect(page.locator("#cert-cause-error")).to_have_text(re.compile("罹災原因を入力してください"))
            page.locator("#cert-cause").fill("令和8年11月20日の地震")
            page.locator("#cert-issue-submit").click()
            expect(page.locator("#cd-kind")).to_have_text("被災証明書")  # the new one is open
            expect(page.locator("#cert-cause-error")).to_be_hidden()
            number = page.locator("#cd-number").inner_text()
            assert re.fullmatch(rf"H-U[0-9A-Z]{{5}}-{A}-000001", number), number
            assert registry_number == number.replace("H-", "R-", 1)  # one counter per kind
            expect(page.locator("#cd-status")).to_have_text("有効")
            expect(page.locator("#cd-manual")).to_be_visible()
            expect(page.locator("#cd-member-rows tr")).to_have_count(1)
            expect(page.locator("#hub-done-text")).to_contain_text(number)
            expect(page.locator(f"#cert-rows tr[data-number='{number}']")).to_contain_text("台帳外 一郎")

            with page.expect_download() as info:
                page.locator("#cert-pdf").click()
            data = Path(info.value.path()).read_bytes()
            assert info.value.suggested_filename == f"{number}.pdf" and data.startswith(b"%PDF")
            text = pdf_text(data)
            assert "被災証明書" in text and "台帳外一郎" in text and number in text

            page.locator("#cert-void-submit").click()  # no reason: refused, next to the field
            expect(page.locator("#cert-void_reason-error")).to_have_text("無効にする理由を入力してください")
            expect(page.locator("#cd-status")).to_have_text("有効")
            page.locator("#cert-void_reason").fill("記載誤り")
            page.locator("#cert-void-submit").click()
            expect(page.locator("#cd-status")).to_have_text("無効")
            expect(page.locator("#cd-void-note")).to_contain_text("記載誤り")
            expect(page.locator("#cd-print-actions")).to_be_hidden()
            expect(page.locator("#cd-history-rows tr")).to_have_count(2)
            expect(page.locator(f"#cert-rows tr.void[data-number='{number}']")).to_have_count(1)
            page.screenshot(path=str(SCREENSHOTS / "hub_desk_certificate.png"), full_page=True)
            page.select_option("#cert-f-status", "issued")
            page.locator("#cert-search").click()
            expect(page.locator("#cert-rows tr")).to_have_count(1)
            expect(page.locator(f"#cert-rows tr[data-number='{registry_number}']")).to_contain_text("有効")

            # --- PFIF: Person Finder's sample, then a family's file naming a resident -----------------
            page.locator("#tab-pfif").click()
            expect(page.locator("#panel-pfif")).to_be_visible()
            page.locator("#pfif-import-submit").click()  # no file chosen
            expect(page.locator("#pfif-file-error")).to_have_text("取り込むファイルを選んでください。")
            page.locator("#pfif-file").set_input_files(str(SAMPLES / "test.pfif-1.4.xml"))
            page.locator("#pfif-import-submit").click()
            expect(page.locator("#pfif-result-text")).to_contain_text("test.pfif-1.4.xml")
            expect(page.locator("#pfif-result-text")).to_contain_text("捜索依頼 1件（新規 1")
            expect(page.locator("#pfif-list article.sought-card")).to_have_count(1)
            sample = page.locator("#pfif-list article[data-record='test.google.com/person.21009']")
            expect(sample).to_contain_text("照合候補はありません。")

            s = h.sought
            rid = "pf.example.org/family-1"
            t = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
            family = h.tmp / "family.xml"
            family.write_bytes(write_pfif([PfifPerson(
                rid, source_date=t, full_name=f"{s['氏']} {s['名']}", alternate_names=f"{s['氏カナ']} {s['名カナ']}",
                sex={"1": "male", "2": "female"}[s["性別"]], date_of_birth=s["生年月日"], author_name="家族",
                notes=[PfifNote(f"{rid}.n1", rid, author_name="家族", source_date=t, status="information_sought",
                                text="連絡が取れません。")])]))
            page.locator("#pfif-file").set_input_files(str(family))
            page.locator("#pfif-import-submit").click()
            expect(page.locator("#pfif-result-text")).to_contain_text("family.xml")
            card = page.locator(f"#pfif-list article[data-record='{rid}']")
            expect(card).to_contain_text("情報を求めています")
            link = card.locator(f"tr[data-kind='resident'][data-target='{s['宛名番号']}']")
            expect(link).to_contain_text("自動照合")
            expect(link).to_contain_text(f"{s['氏']}　{s['名']}")
            link.locator("button[data-decision='confirmed']").click()
            expect(page.locator("#hub-done-text")).to_contain_text("同一人物と確認しました")
            link = page.locator(f"#pfif-list article[data-record='{rid}'] tr[data-target='{s['宛名番号']}']")
            expect(link).to_contain_text("確認済み")
            expect(link).to_contain_text("hq:窓口 佐藤")
            expect(link.locator("button[data-decision='undo']")).to_have_count(1)
            page.screenshot(path=str(SCREENSHOTS / "hub_desk_pfif.png"), full_page=True)

            # --- HQ's token: the same page, with the inquiry log (real outcomes) ----------------------
            page.locator("#logout").click()
            expect(page.locator("#login")).to_be_visible()
            assert page.evaluate("sessionStorage.length") == 0
            assert page.locator("#pfif-list article").count() == 0
            page.locator("#token").fill(h.a.hq_token)
            page.locator("#token-submit").click()
            expect(page.locator("#who-role")).to_have_text("本部")
            page.locator("#tab-inquiry").click()
            expect(page.locator("#inquiry-log-box")).to_be_visible()
            page.locator("#log-load").click()
            expect(page.locator("#log-rows tr")).to_have_count(2)  # the refused form was never logged
            expect(page.locator("#log-rows tr.outcome-answered")).to_have_count(1)
            expect(page.locator("#log-rows tr.outcome-not_found")).to_contain_text("該当者なし")
            expect(page.locator("#log-rows tr.outcome-answered")).to_contain_text("①②③")
            page.locator("#to-hq").click()
            expect(page.locator("#board")).to_be_visible()  # /hq reads the same token
            expect(page.locator("#who-role")).to_have_text("本部")

            assert not seen.outside, seen.outside
            assert not seen.errors, seen.errors
            assert seen.failed == [(422, "/v1/hq/inquiries"), (422, "/v1/hq/certificates"), (422, "/v1/hq/certificates"),
                              (422, f"/v1/hq/certificates/{number}/void")], seen.failed
        finally:
            browser.close()
