"""監査ログの異常 in real headless Chromium: the admin follows a flag to the very entries behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services import audit
from tests.web.helpers import build_shelter
from tests.web.server import CHROMIUM, CHROMIUM_ARGS, serve
from tests.web.test_browser_flow import expect, switch_user

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

if not CHROMIUM.exists():
    pytestmark.append(pytest.mark.skip(reason="!!! /usr/bin/chromium is missing: browser tests NOT RUN !!!"))


class Suzuki:
    id, name, role = "U-suzuki", "鈴木", "staff"


def test_admin_follows_a_flag_to_its_entries(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    with Session(engine) as s:
        oracle = [audit.record(s, Suzuki(), "search", "GET /api/search", ["resident:1004"],
                               {"query": {"name": "山﨑 花", "address": f"米崎町{k}"}}).id for k in range(6)]
        for k in range(150):  # newer entries push the oracle's off the first page of the log
            audit.record(s, Suzuki(), "view", "GET /roster", [f"evacuee:E{k}"])
        s.commit()
    engine.dispose()
    with serve(sh.db_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"{base}/switch")
        switch_user(page, base, "管理", "9999")
        page.goto(f"{base}/admin/audit")
        page.locator("#anomalies-link").click()
        row = page.locator('tr.anomaly[data-rule="address_oracle"]')
        expect(row).to_contain_text("鈴木")
        expect(row).to_contain_text("宛名番号 1004")
        assert "米崎町" not in page.content()
        row.locator("a.entries-link").click()
        page.wait_for_selector("#audit-table")
        ids = [int(x) for x in page.locator("#audit-table tbody tr td:first-child").all_inner_texts()]
        assert sorted(ids) == oracle
        expect(page.locator(f"#entry-{oracle[0]}")).to_be_in_viewport()
        browser.close()
