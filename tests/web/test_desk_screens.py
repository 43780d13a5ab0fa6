"""The desk's other screens (issue 14 items 5, 6, 8, 9, 11), as a volunteer acts: keyboard only,
Chromium at 1366×768, asserting the Japanese a person reads. Screenshots go to
test-output/screenshots/ds_*.png."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.conftest import write_csv
from tests.web.helpers import HEADER, REGISTRY, STAFF, Shelter
from tests.web.server import CHROMIUM, serve
from tests.web.test_browser_flow import active_id, browser, expect, shot, tab_to, type_here  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

if not CHROMIUM.exists():
    pytestmark.append(pytest.mark.skip(reason="!!! /usr/bin/chromium is missing: browser tests NOT RUN !!!"))

CITY = "岩手県陸前高田市"
#: more residents: a household for the roster search, and enough 町字 for the HQ chart to fold
EXTRA = [
    ["2001", "H20", "清水", "美智雄", "シミズ", "ミチオ", "", "S28.3.10", "1", "世帯主", "", CITY + "高田町字館の沖20-1", ""],
    ["2002", "H21", "村上", "一", "ムラカミ", "ハジメ", "", "S40.1.1", "1", "世帯主", "", CITY + "米崎町10-2-3", ""],
    ["2003", "H22", "村上", "二郎", "ムラカミ", "ジロウ", "", "S41.1.1", "1", "世帯主", "", CITY + "米崎町2-2-3", ""],
    ["2004", "H23", "村上", "三郎", "ムラカミ", "サブロウ", "", "S42.1.1", "1", "世帯主", "", CITY + "米崎町1-2-3", ""],
    ["2005", "H24", "及川", "緑", "オイカワ", "ミドリ", "", "S50.5.5", "2", "世帯主", "", CITY + "緑が丘四丁目3-2", ""],
    ["2006", "H25", "菅野", "守", "カンノ", "マモル", "", "S51.6.6", "1", "世帯主", "", CITY + "竹駒町字相川5", ""],
]
#: the visible-text tokens no staff screen may show (developer text)
DEV_TOKENS = ("=", "same-address", "anpi ", "anpi-", '{"', "/api/", "best candidate", "runner-up", "family", "birth")


def desk_shelter(tmp_path: Path) -> Shelter:
    """The staff helpers' registry plus EXTRA; evacuees: しみず みちお (linked to 清水 美智雄), 渡辺 稔 (in review),
    佐々木 健 (transferred to 第二中学校, a listed shelter), 山崎 花 (linked to a 閲覧制限 resident)."""
    from app.db import open_shelter_db
    from app.services import accounts, evacuees, shelter_list
    from app.services.reconcile import reconcile_all
    from app.services.registry import import_registry
    from app.services.roster import EvacueeInput, register

    db_path = tmp_path / "shelter.db"
    csv_path = write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY, *EXTRA])
    engine = open_shelter_db(db_path)
    import_registry(engine, csv_path, as_of=date(2026, 10, 31))
    sh = Shelter(db_path, csv_path)
    with Session(engine, expire_on_commit=False) as s:
        for name, (role, pin) in STAFF.items():
            sh.user_ids[name] = accounts.add_user(s, name, role, pin).id
        people = {
            "shimizu": EvacueeInput(name="しみず みちお", birth_date="昭和28年3月10日", sex="男", address="高田町館の沖20-1"),
            "watanabe": EvacueeInput(name="渡辺 稔", name_kana="わたなべ みのる", birth_date="S30.5.5", sex="女",
                                     address="高田町2"),
            "sasaki": EvacueeInput(name="佐々木 健", name_kana="ささき けん", birth_date="S55.2.2", sex="男",
                                   address="気仙町3"),
            "yamazaki": EvacueeInput(name="山崎 花", name_kana="やまざき はな", birth_date="1999-12-31", sex="女",
                                     address="米崎町2-1"),
        }
        for key, p in people.items():
            sh.evacuee_ids[key] = register(s, p, by="佐藤").id
        shelter_list.save(s, code="S2", name="第二中学校", capacity=300, population=120)
        s.commit()
    reconcile_all(engine)
    with Session(engine) as s:
        evacuees.transfer(s, sh.evacuee_ids["sasaki"], "第二中学校", by="佐藤")
        s.commit()
    engine.dispose()
    return sh


def _page(browser):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _tile_digit(page, name: str) -> str:  # type: ignore[no-untyped-def]
    return page.locator("label.tile", has=page.locator(".tile-name", has_text=re.compile(f"^{name}$"))).get_attribute("data-index")


def _log_in(page, base: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """The 交代 screen by keyboard: the name's digit, the PIN, Enter."""
    page.goto(f"{base}/switch")
    page.wait_for_selector("#switch-form")
    page.keyboard.press(_tile_digit(page, name))
    assert active_id(page) == "pin"
    page.keyboard.type(STAFF[name][1])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/dashboard")


def _visible(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator("body").inner_text()


def test_lock_screen_digits_choose_a_person_and_never_burn_a_pin(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Item 5: after 交代・ロック the last user is marked but the focus is on the names, so pressing
    鈴木's number chooses 鈴木 (佐藤's PIN attempts untouched); Esc in the PIN box goes back to the names."""
    sh = desk_shelter(tmp_path)
    with serve(sh.db_path) as base:
        page, errors = _page(browser)
        _log_in(page, base, "佐藤")
        tab_to(page, "switch-button")
        page.keyboard.press("Enter")  # 交代・ロック
        page.wait_for_url(re.compile(r".*/switch.*"))
        assert "画面をロックしました" in _visible(page)
        assert "数字キー 1〜9 でも選べます" in _visible(page)
        expect(page.locator("input[name=user_id]:checked")).to_have_count(1)
        focused = page.evaluate("document.activeElement.name + ':' + document.activeElement.checked")
        assert focused == "user_id:true", focused  # the focus is on the (preselected) name, not the PIN box
        shot(page, "ds_01_lock_screen")
        page.keyboard.press(_tile_digit(page, "鈴木"))
        assert active_id(page) == "pin" and page.input_value("#pin") == ""
        page.keyboard.press("Escape")  # changed my mind: back to the names, nothing typed into the PIN
        assert page.evaluate("document.activeElement.name") == "user_id"
        page.keyboard.press(_tile_digit(page, "鈴木"))
        page.keyboard.type("5678")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/dashboard")
        assert page.locator("#who-name").inner_text() == "鈴木"
        assert errors == []
    from app.db import open_shelter_db
    from app.services.accounts import get_user

    engine = open_shelter_db(sh.db_path)
    with Session(engine) as s:
        assert get_user(s, sh.user_ids["佐藤"]).failed_attempts == 0
    engine.dispose()


def _search_roster(page, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    page.locator("#q").press("Control+a")  # (the search box keeps the focus after each search)
    type_here(page, text)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    return [t.strip() for t in page.locator("#roster-table tbody tr td:first-child").all_inner_texts()]


def test_roster_search_folds_spellings_and_shows_the_status_filter(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Item 6: シミズ, shimizu and the registry's 清水 美智雄 all find しみず みちお; a transferred person is
    not hidden silently — the page says 在所のみ and offers the others."""
    sh = desk_shelter(tmp_path)
    with serve(sh.db_path) as base:
        page, errors = _page(browser)
        _log_in(page, base, "佐藤")
        page.goto(f"{base}/roster")
        assert active_id(page) == "q"
        assert _search_roster(page, "シミズ") == ["しみず みちお"]
        assert page.locator("#q").evaluate("e => e === document.activeElement")
        assert _search_roster(page, "清水 美智雄") == ["しみず みちお"]  # the linked registry record's name
        assert _search_roster(page, "shimizu") == ["しみず みちお"]
        assert _search_roster(page, "渡邉") == ["渡辺 稔"]  # old kanji form
        shot(page, "ds_02_roster_kana")
        assert _search_roster(page, "ササキ") == ["該当する方はいません。"]
        note = page.locator("#filter-note").inner_text()
        assert note == "在所のみ表示中（退所・移動 1人を表示）", note
        shot(page, "ds_03_roster_filter_note")
        tab_to(page, "show-all")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        rows = page.locator("#roster-table tbody tr").all_inner_texts()
        assert len(rows) == 1 and "佐々木 健" in rows[0] and "移動" in rows[0]
        assert "在所のみ" not in _visible(page)
        assert errors == []


def test_hq_towns_in_registry_spelling_natural_order_folded_chart_and_name_search(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Item 8: the chart is folded (many 町字), the list is on the first screen, 町字 read as the registry
    writes them and in natural order, a name search finds しみず without ever showing 閲覧制限 people,
    and a transfer reads 移動 with its destination."""
    sh = desk_shelter(tmp_path)
    with serve(sh.db_path) as base:
        page, errors = _page(browser)
        _log_in(page, base, "本部")
        page.goto(f"{base}/hq")
        box = page.locator("#town-chart-box")
        assert box.get_attribute("open") is None
        n_towns = int(re.search(r"町字ごとの確認状況（(\d+)町字", box.inner_text()).group(1))
        assert n_towns > 6
        assert page.locator("#town-chart").is_visible() is False
        assert page.locator("#hq-table tbody tr").first.bounding_box()["y"] < 768  # the list is on the first screen
        towns = page.locator("#town option").all_inner_texts()
        assert towns.index("米崎町1") < towns.index("米崎町2") < towns.index("米崎町10"), towns
        assert "緑が丘四丁目" in towns and "緑ケ丘4" not in towns and "高田町字館の沖" in towns
        table = page.locator("#hq-table").inner_text()
        assert "緑が丘四丁目" in table and "緑ケ丘4" not in table
        sasaki = page.locator("#res-1007").inner_text()
        assert "移動" in sasaki and "第二中学校へ移動" in sasaki and "退所" not in sasaki
        shot(page, "ds_04_hq_folded")
        tab_to(page, "town-chart-toggle")
        page.keyboard.press("Enter")  # the chart opens when asked for
        expect(page.locator("#town-chart")).to_be_visible()
        bars = page.locator("#town-chart .bar-link").evaluate_all("bs => bs.map(b => b.getAttribute('data-town'))")
        assert bars.index("米崎町1") < bars.index("米崎町2") < bars.index("米崎町10"), bars
        labels = page.locator("#town-chart").evaluate("s => s.textContent")
        assert "緑が丘四丁目" in labels
        shot(page, "ds_04b_hq_chart_open")
        tab_to(page, "name")
        type_here(page, "しみず")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        names = page.locator("#hq-table .hq-name").all_inner_texts()
        assert names == ["清水 美智雄"], names
        shot(page, "ds_05_hq_name_search")
        tab_to(page, "name")
        page.keyboard.press("Control+a")
        type_here(page, "yamazaki")  # 山﨑 花 is 閲覧制限: even HQ's name search never shows (or counts) her
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#hq-table tbody").inner_text().strip() == "該当する住民はいません。"
        assert page.locator("#restricted-note").count() == 0
        assert errors == []


def _no_dev_text(page, where: str) -> None:  # type: ignore[no-untyped-def]
    text = _visible(page)
    found = [t for t in DEV_TOKENS if t in text]
    assert not found, f"{where}: developer text {found} in {text[:2000]!r}"


def test_staff_screens_speak_plain_japanese(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Item 9: the review queue, a person's page, the intake candidates, the dashboard and the audit view
    with data that produces engine reasons: reasons read 「生年月日が一致」「住所の番地まで一致」, never
    `same-address`, `=`, JSON, commands or URL paths."""
    sh = desk_shelter(tmp_path)
    with serve(sh.db_path) as base:
        page, errors = _page(browser)
        _log_in(page, base, "管理")
        for path in ("/dashboard", "/review", f"/roster/{sh.evacuee_ids['watanabe']}",
                     f"/roster/{sh.evacuee_ids['shimizu']}", "/roster", "/hq", "/admin/shelters", "/desk/sought",
                     "/admin/users", "/admin/registry"):
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            _no_dev_text(page, path)
        page.goto(f"{base}/review")
        reasons = page.locator("table.reasons").first.inner_text()
        assert "生年月日" in reasons and "性別" in reasons and "違う" in reasons, reasons
        shot(page, "ds_06_review_reasons")
        page.goto(f"{base}/roster/{sh.evacuee_ids['shimizu']}")
        history = page.locator("#history").inner_text()
        assert "生年月日が一致" in history and "住所の番地まで一致" in history, history
        shot(page, "ds_07_person_history")
        page.goto(f"{base}/intake")
        page.keyboard.press("Enter")  # (no address) → the first name field
        type_here(page, "清水 美智雄")
        page.keyboard.press("Tab")
        page.wait_for_selector("#m-0-cands .reasons-line")
        line = page.locator("#m-0-cands .reasons-line").first.inner_text()
        assert line.startswith("理由: ") and "氏が一致" in line, line
        _no_dev_text(page, "/intake candidates")
        shot(page, "ds_08_intake_reasons")
        page.goto(f"{base}/admin/audit")
        _no_dev_text(page, "/admin/audit")
        audit = page.locator("#audit-table").inner_text()
        assert "名簿（表示）" in audit and "避難者 " in audit
        shot(page, "ds_09_audit")
        assert errors == []


def test_transfer_to_a_listed_shelter_or_other(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Item 11: the admin adds a shelter (name, code, capacity) on 避難所; a volunteer moves a person to it
    by choosing it from the list, and another to 「その他」 with 親族宅 typed; `anpi shelter list` agrees."""
    sh = desk_shelter(tmp_path)
    with serve(sh.db_path) as base:
        page, errors = _page(browser)
        _log_in(page, base, "管理")
        page.goto(f"{base}/admin/shelters")
        assert active_id(page) == "sh-name"
        type_here(page, "高田小学校")
        page.keyboard.press("Tab")
        type_here(page, "S3")
        page.keyboard.press("Tab")
        page.keyboard.type("250")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/admin/shelters\?done=.*"))
        assert "高田小学校 を追加しました" in page.locator("#shelters-done").inner_text()
        table = page.locator("#shelters-table").inner_text()
        assert "高田小学校" in table and "250人" in table and "第二中学校" in table and "空き 180人" in table
        shot(page, "ds_10_admin_shelters")
        _log_in(page, base, "佐藤")
        page.goto(f"{base}/roster/{sh.evacuee_ids['shimizu']}")
        tab_to(page, "transfer-destination")
        options = page.locator("#transfer-destination option").all_inner_texts()
        assert any(o.startswith("高田小学校") for o in options) and options[-1] == "その他（下に入力）"
        assert not any(o.startswith("避難所") for o in options)  # not the shelter this person is in
        page.keyboard.press("ArrowDown")  # the first listed shelter
        chosen = page.locator("#transfer-destination").evaluate("s => s.options[s.selectedIndex].text")
        tab_to(page, "transfer-submit")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*done=transfer"))
        assert page.locator("#person-status").inner_text() == "移動"
        assert chosen.split("（")[0] in page.locator("#history").inner_text()
        shot(page, "ds_11_transferred")
        page.goto(f"{base}/roster/{sh.evacuee_ids['watanabe']}")
        tab_to(page, "transfer-destination")
        page.keyboard.press("End")  # 「その他」
        page.keyboard.press("Tab")
        assert active_id(page) == "transfer-other"
        type_here(page, "親族宅（大船渡市）")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*done=transfer"))
        assert "親族宅（大船渡市）" in page.locator("#history").inner_text()
        assert errors == []
    anpi = str(Path(sys.executable).parent / "anpi")
    out = subprocess.run([anpi, "--db", str(sh.db_path), "shelter", "list", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert '"name": "高田小学校"' in out and '"capacity": 250' in out
