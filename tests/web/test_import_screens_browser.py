"""Issue 14 items 12–13 in Chromium, as a volunteer and the admin would do them: keyboard only, 1366×768.

Item 12: a roster row with an unreadable birth date or consent is registered as typed and listed as
要確認; only a row without any name is refused. Item 13: a registry file with a bad row can be loaded
on purpose without it, and the snapshot then says 不完全. (Choosing the file is the one step the
browser's own file dialog does; Playwright hands it the file.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_csv
from tests.web.helpers import HEADER, REGISTRY
from tests.web.server import CHROMIUM, serve
from tests.web.test_browser_flow import active_id, browser, shot  # noqa: F401
from tests.web.test_desk_screens import _log_in, _page, _visible, desk_shelter

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"),
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


def test_a_roster_row_with_unreadable_cells_is_registered_and_listed_for_staff(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    sh = desk_shelter(tmp_path)
    roster = write_csv(tmp_path / "meibo.csv", [
        ["受付番号", "氏名", "ふりがな", "生年月日", "性別", "住所", "同意_親族"],
        ["A-1", "岩手 一郎", "いわて いちろう", "昭和45年13月1日", "男", "高田町1", "同意"],
        ["A-2", "岩手 花子", "いわて はなこ", "1972-05-05", "女", "高田町1", "たぶん"],
        ["A-3", "", "", "1980-01-01", "男", "高田町1", ""],
    ])
    page, errors = _page(browser)
    with serve(sh.db_path) as base:
        _log_in(page, base, "佐藤")
        page.goto(f"{base}/roster/import")
        assert active_id(page) == "file"
        page.locator("#file").set_input_files(str(roster))
        page.keyboard.press("Tab")  # to 取り込む
        with page.expect_navigation():
            page.keyboard.press("Enter")
        result = page.locator("#import-result").inner_text()
        assert "3行のうち 2人を登録しました" in result and "入力のまま登録しました" in result
        assert "氏名もふりがなもない 1行は登録できませんでした" in result
        flags = page.locator("#flags").inner_text()
        assert "岩手 一郎" in flags and "昭和45年13月1日" in flags and "13月はありません" in flags
        assert "岩手 花子" in flags and "たぶん" in flags
        shot(page, "imp_01_roster_flags")
        page.goto(f"{base}/roster")
        assert "岩手 一郎" in _visible(page) and "岩手 花子" in _visible(page)
    assert errors == []


def test_a_registry_with_a_bad_row_loads_without_it_only_when_asked(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    sh = desk_shelter(tmp_path)
    bad = write_csv(tmp_path / "juki-bad.csv", [HEADER, *REGISTRY, REGISTRY[0]])  # one 宛名番号 twice
    page, errors = _page(browser)
    with serve(sh.db_path) as base:
        _log_in(page, base, "管理")
        page.goto(f"{base}/admin/registry")
        assert active_id(page) == "reg-file"
        page.locator("#reg-file").set_input_files(str(bad))
        page.locator("#reg-quarantine").focus()  # the admin tabs down to the box and ticks it
        page.keyboard.press("Space")
        assert page.locator("#reg-quarantine").is_checked()
        page.keyboard.press("Tab")  # to 取り込む
        with page.expect_navigation():
            page.keyboard.press("Enter")
        # the job page follows the import and shows the new snapshot as incomplete
        page.wait_for_selector("td.snapshot-state strong", timeout=30_000)
        shot(page, "imp_02_registry_quarantine")
        state = page.locator("td.snapshot-state").first.inner_text()
        assert "不完全" in state and "1行を除外" in state, state
        assert "宛名番号" in _visible(page)  # the left-out row is listed with its field
    assert errors == []
