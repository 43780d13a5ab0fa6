"""The 安否確認 screen and /api/hq through real HTTP: counts and chart, the paged list, HQ records
(CSRF), file downloads in every format, 閲覧制限 only on HQ's internal view, audit; and one
real-browser run (Chromium) that sees the chart and downloads a CSV."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from pathlib import Path

import pytest

from tests.web.helpers import api_csrf, build_shelter, client_as, csrf_of, shelter_app
from tests.web.server import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, serve
from app.db_crypto import connect as db_connect

warnings.filterwarnings("ignore", category=DeprecationWarning)

RESTRICTED = ("山﨑", "1004", "米崎町")


def prepare(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The shared test shelter, with 渡邉 稔 linked (in the shelter) and an HQ record for 1005."""
    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services.anpi_list import record_hq_confirmation
    from app.services.reconcile import staff_decide

    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    with Session(engine) as s:
        staff_decide(s, sh.evacuee_ids["watanabe"], "confirmed", "1006", by="佐藤")
        record_hq_confirmation(s, "1005", "confirmed_other", "電話", "本人と通話", by="本部")
        s.commit()
    engine.dispose()
    return sh


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return prepare(tmp_path)


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path, auto_lock_seconds=3600)



def audit_rows(shelter, action: str) -> list[tuple[str, str, list[str], dict]]:  # type: ignore[no-untyped-def]
    con = db_connect(shelter.db_path)
    try:
        return [(u, sc, json.loads(s), json.loads(d)) for u, sc, s, d in con.execute(
            "SELECT user_name, screen, subjects, detail FROM audit_entry WHERE action = ? ORDER BY id", (action,))]
    finally:
        con.close()


def test_screen_counts_chart_and_restricted_marked(app, shelter) -> None:  # type: ignore[no-untyped-def]
    hq = client_as(app, "本部")
    r = hq.get("/hq")
    assert r.status_code == 200
    html = r.text
    assert re.search(r'id="n-safe">2<', html) and re.search(r'id="n-unconfirmed">6<', html)
    svg = re.search(r'<svg id="town-chart".*?</svg>', html, re.S).group(0)
    assert svg.count('class="bar-safe"') == 4  # one bar per 町字 (the 閲覧制限 town too: HQ may see it)
    assert "高田町館ノ沖" in svg and "2 / 2人（100%）" in svg  # 高田町: 渡邉 (shelter) + グエン (phone)
    row = re.search(r'<tr class="restricted" id="res-1004">.*?</tr>', html, re.S).group(0)
    assert "山﨑 花" in row and "閲覧制限" in row
    assert "本人と通話" in html and "<script>" not in html
    views = audit_rows(shelter, "view")
    assert views[-1][1] == "GET /hq" and "resident:1004" in views[-1][2] and views[-1][3]["restricted_shown"] == 1
    assert client_as(app, "佐藤").get("/hq").status_code == 403
    assert client_as(app, "窓口").get("/hq").status_code == 403


def test_filters_and_paging(app) -> None:  # type: ignore[no-untyped-def]
    hq = client_as(app, "本部")
    html = hq.get("/hq", params={"town": "高田町館ノ沖"}).text
    assert html.count('<tr class="" id="res-') == 3 and "1 / 1" not in html
    html = hq.get("/hq", params={"status": "confirmed_other"}).text
    assert re.findall(r'id="res-(\d+)"', html) == ["1005"]
    page2 = hq.get("/hq", params={"per_page": "3", "page": "2"}).text
    assert len(re.findall(r'id="res-(\d+)"', page2)) == 3 and "2 / 3ページ" in page2
    assert 'id="page-prev"' in page2 and 'id="page-next"' in page2
    r = hq.get("/hq", params={"town": "どこにもない町"})
    assert r.status_code == 422 and "どこにもない町" in r.text
    assert hq.get("/hq", params={"age_band": "9-9"}).status_code == 422


def test_record_form_needs_csrf_and_shows_history(app, shelter) -> None:  # type: ignore[no-untyped-def]
    hq = client_as(app, "本部")
    page = hq.get("/hq", params={"rec": "1007"}).text
    assert 'id="record-who"' in page and "佐々木 健" in page
    token = csrf_of(page)
    bad = hq.post("/hq/confirm", data={"csrf_token": token, "resident_id": "1007", "status": "confirmed_other"})
    assert bad.status_code == 422 and "確認方法を選んでください" in bad.text
    missing = hq.post("/hq/confirm", data={"csrf_token": token, "resident_id": "9999", "status": "dead"})
    assert missing.status_code == 422 and "宛名番号 9999 は台帳にありません" in missing.text
    assert hq.post("/hq/confirm", data={"resident_id": "1007", "status": "dead"}).status_code == 403  # no token
    r = hq.post("/hq/confirm", data={"csrf_token": token, "resident_id": "1007", "status": "confirmed_other",
                                     "method": "訪問", "note": "自宅で無事", "back": "town=気仙町"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/hq?town=")
    page = hq.get(r.headers["location"]).text
    assert "他の手段で確認したことを記録しました" in page and "自宅で無事" in page
    assert re.search(r'<caption>本部の記録（古い順）</caption>.*?訪問', page, re.S)
    confirms = audit_rows(shelter, "hq_confirm")
    assert confirms[-1][0] == "本部" and confirms[-1][1] == "POST /hq/confirm" and confirms[-1][2] == ["resident:1007"]
    desk = client_as(app, "窓口")
    assert desk.post("/hq/confirm", data={"csrf_token": csrf_of(desk.get("/dashboard").text),
                                          "resident_id": "1007", "status": "dead"}).status_code == 403


def _links(html: str) -> dict[str, str]:
    return {m.group(1): m.group(2).replace("&amp;", "&")
            for m in re.finditer(r'<a class="btn" id="(export-[a-z0-9]+)" download href="([^"]+)"', html)}


def test_every_export_button_downloads_without_restricted(app, shelter) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook
    from pypdf import PdfReader

    hq = client_as(app, "本部")
    links = _links(hq.get("/hq").text)
    assert set(links) == {"export-csv", "export-cp932", "export-xlsx", "export-pdf", "export-pfif"}
    texts = {}
    for key, url in links.items():
        r = hq.get(url)
        assert r.status_code == 200, (key, r.text[:300])
        assert r.headers["content-disposition"].startswith("attachment; filename=\"anpi-list-")
        body = r.content
        if key == "export-csv":
            assert body.startswith(b"\xef\xbb\xbf")
            text = body.decode("utf-8-sig")
            assert r.headers["x-anpi-restricted-excluded"] == "1" and r.headers["x-anpi-rows"] == "7"
        elif key == "export-cp932":
            text = body.decode("cp932")
            assert "髙橋 一郎" in text
        elif key == "export-xlsx":
            wb = load_workbook(io.BytesIO(body))
            text = "\n".join(str(c) for ws in wb for row in ws.iter_rows(values_only=True) for c in row if c is not None)
            assert "閲覧制限により出力していない人数" in text
        elif key == "export-pdf":
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
            assert "閲覧制限により出力していない人数: 1人" in text
        else:
            text = body.decode("utf-8")
        texts[key] = text
        for needle in RESTRICTED:
            assert needle not in text, (key, needle)
    assert "渡邉 稔" in texts["export-csv"] and "避難所で確認" in texts["export-csv"]
    exports = audit_rows(shelter, "export")
    assert [e[3]["format"] for e in exports] == ["csv", "csv", "xlsx", "pdf", "pfif"]
    assert all(e[0] == "本部" and e[1] == "GET /hq/export" for e in exports)
    assert exports[1][3]["encoding"] == "cp932" and "resident:1006" in exports[0][2]


def test_filtered_export_and_replacement_report(app) -> None:  # type: ignore[no-untyped-def]
    hq = client_as(app, "本部")
    links = _links(hq.get("/hq", params={"town": "気仙町"}).text)
    rows = list(csv.DictReader(io.StringIO(hq.get(links["export-csv"]).content.decode("utf-8-sig"))))
    assert {r["町字"] for r in rows} == {"気仙町"} and len(rows) == 2
    report = hq.get("/hq/export", params={"format": "csv", "encoding": "cp932", "report": "1"})
    assert report.status_code == 200 and report.headers["x-anpi-replacements"] == "0"
    assert report.content.decode("utf-8-sig").splitlines()[0] == "行,宛名番号,項目,元の文字,符号位置,置換後"
    assert client_as(app, "佐藤").get(links["export-csv"]).status_code == 403


def test_api_list_counts_and_restricted_only_for_hq(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.api import auth

    hq = client_as(app, "本部")
    body = hq.get("/api/hq/list", params={"per_page": 3}).json()
    assert body["total"] == 8 and body["pages"] == 3 and len(body["rows"]) == 3
    everyone = hq.get("/api/hq/list", params={"per_page": 100}).json()["rows"]
    marked = [r for r in everyone if r["restricted"]]
    assert [r["resident_id"] for r in marked] == ["1004"]
    watanabe = next(r for r in everyone if r["resident_id"] == "1006")
    assert watanabe["status"] == "in_shelter" and watanabe["shelter"]
    counts = hq.get("/api/hq/counts", params={"town": ["気仙町", "高田町"]}).json()
    assert counts["counts"]["unconfirmed"] == 2 and {t["town"] for t in counts["towns"]} == {"気仙町", "高田町"}
    assert hq.get("/api/hq/list", params={"age_band": "3-4"}).status_code == 422
    # a municipality where 本部 staff are not cleared for 閲覧制限: the JSON leaves the person out
    monkeypatch.setitem(auth.PERMISSIONS, "restricted", frozenset({"admin"}))
    r = hq.get("/api/hq/list", params={"per_page": 100})
    assert r.status_code == 200 and r.json()["restricted_excluded"] == 1 and r.json()["total"] == 7
    for needle in RESTRICTED:
        assert needle not in r.text
    page = hq.get("/hq").text
    assert "閲覧制限の方 1人は表示していません" in page and "山﨑" not in page
    assert "1004" not in hq.get("/api/hq/counts").text


def test_api_confirmations(app, shelter) -> None:  # type: ignore[no-untyped-def]
    hq = client_as(app, "本部")
    token = api_csrf(hq)
    r = hq.post("/api/hq/confirmations", json={"resident_id": "1008", "status": "missing"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.json()["by_user"] == "本部"
    r = hq.post("/api/hq/confirmations", json={"resident_id": "1008", "status": "withdrawn"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201
    r = hq.post("/api/hq/confirmations", json={"resident_id": "1008", "status": "withdrawn"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 409 and r.json()["detail_ja"] == "取り消す記録がありません"
    r = hq.post("/api/hq/confirmations", json={"resident_id": "1008", "status": "confirmed_other"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 422 and r.json()["field"] == "method"
    rows = hq.get("/api/hq/list", params={"household": "H6"}).json()["rows"]
    assert rows[0]["status"] == "unconfirmed"


def test_hq_page_fields_are_labelled_and_japanese(app) -> None:  # type: ignore[no-untyped-def]
    from tests.web.test_screens import _Fields

    html = client_as(app, "本部").get("/hq", params={"rec": "1001"}).text
    p = _Fields()
    p.feed(html)
    assert p.lang == "ja"
    assert [fid for fid, wrapped in p.fields if not wrapped and fid not in p.ids_labelled] == []


# --- a real browser ---------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.xdist_group("browser")
@pytest.mark.skipif(not CHROMIUM.exists(), reason="!!! /usr/bin/chromium is missing: browser test NOT RUN !!!")
def test_browser_sees_chart_and_downloads_csv(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    sh = prepare(tmp_path)
    with serve(sh.db_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP", accept_downloads=True)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "404" not in m.text else None)
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
            page.goto(f"{base}/switch")
            page.locator(".tile-name", has_text="本部").click()
            # the click handler empties and focuses the PIN field: typing before it runs loses digits
            expect(page.locator("#pin")).to_be_focused()
            page.keyboard.type("2222")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/dashboard")
            page.get_by_role("link", name="安否確認").click()
            page.wait_for_url(f"{base}/hq")
            chart = page.locator("#town-chart")
            assert chart.is_visible() and chart.locator("rect.bar-safe").count() == 4
            assert page.locator("#n-safe").inner_text().startswith("2")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "hq_list.png"), full_page=True)
            with page.expect_download() as info:
                page.locator("#export-csv").click()
            data = Path(info.value.path()).read_bytes()
            assert info.value.suggested_filename.startswith("anpi-list-") and data.startswith(b"\xef\xbb\xbf")
            text = data.decode("utf-8-sig")
            assert text.splitlines()[0].startswith("町字,世帯番号,続柄,宛名番号,氏名") and "山﨑" not in text
            assert not errors, errors
        finally:
            browser.close()
