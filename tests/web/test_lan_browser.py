"""`anpi serve --lan` in real browsers (issue 15): the laptop and two tablets as three Chromium
contexts over HTTPS, the laptop's certificate pinned (its public key, as the person at the tablet
checks the fingerprint). The laptop shows the one-time code, each tablet pairs with the keyboard,
two staff register two households at the same moment from the two tablets, and a revoked tablet
is back on the pairing page at its next click. Screenshots (for the README's set-up guide) go to
test-output/screenshots/lan-*.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.models import Evacuee
from app.services.lan_tls import spki_pin
from tests.web.helpers import build_shelter
from tests.web.server import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, LanServer, serve_lan, tablet_relay

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

if not CHROMIUM.exists():  # never download a browser: the shelter laptop has none to download from
    pytestmark.append(pytest.mark.skip(reason="!!! /usr/bin/chromium is missing (apt-get install chromium): "
                                              "browser tests NOT RUN !!!"))

VIEW = {"width": 1366, "height": 768}
TIMEOUT_MS = 90_000  # generous: the suite shares two cores with everything else


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, base: str, name: str, pin: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#switch-form")
    page.get_by_text(name, exact=True).click()
    page.locator("#pin").focus()  # the page's script moves there too, once it has loaded
    page.keyboard.type(pin)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/dashboard")


def show_code(laptop) -> str:  # type: ignore[no-untyped-def]
    laptop.locator("#code-button").focus()
    laptop.keyboard.press("Enter")
    laptop.wait_for_selector("#pair-code-value")
    return laptop.locator("#pair-code-value").inner_text().replace(" ", "")


def pair_tablet(page, srv: LanServer, code: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """What the person at the tablet does: open the address, type a name and the code, Enter."""
    page.goto(f"{srv.base}/dashboard")
    page.wait_for_url(f"{srv.base}/pair?next=/dashboard")
    page.locator("#name").focus()
    page.keyboard.insert_text(name)
    page.keyboard.press("Tab")
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{srv.base}/switch**")


def fill_household(page, address: str, name: str, birth: str) -> None:  # type: ignore[no-untyped-def]
    page.locator("#address").focus()
    page.keyboard.insert_text(address)
    page.locator("#m-0-name").focus()
    page.keyboard.insert_text(name)
    page.locator("#m-0-birth_date").focus()
    page.keyboard.type(birth)
    page.locator("#intake-submit").focus()


def test_a_laptop_and_two_tablets(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shelter = build_shelter(tmp_path)
    with serve_lan(shelter.db_path, tmp_path) as srv, tablet_relay() as relay, sync_playwright() as p:
        # the pin: Chromium trusts this one public key and nothing else it cannot verify
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(srv.cert_pem)}"])
        try:
            laptop = browser.new_context(viewport=VIEW, locale="ja-JP").new_page()
            laptop.set_default_timeout(TIMEOUT_MS)
            laptop.goto(f"{srv.base}/switch")
            log_in(laptop, srv.base, "管理", "9999")
            laptop.goto(f"{srv.base}/admin/devices")
            assert laptop.locator("#lan-fingerprint").inner_text().replace("\n", ":") == srv.fingerprint
            tablets = []
            for i, (staff, pin) in enumerate((("佐藤", "1234"), ("鈴木", "5678")), 1):
                code = show_code(laptop)
                if i == 1:
                    shot(laptop, "lan-laptop-code")
                # a tablet: its connections reach the laptop from another address (tests.web.server)
                page = browser.new_context(viewport=VIEW, locale="ja-JP", proxy={"server": relay}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                if i == 1:
                    page.goto(f"{srv.base}/pair")
                    shot(page, "lan-tablet-pair")
                pair_tablet(page, srv, code, f"受付タブレット{i}")
                log_in(page, srv.base, staff, pin)
                page.goto(f"{srv.base}/intake")
                tablets.append(page)
            a, b = tablets
            fill_household(a, "高田町1", "岩手 太郎", "S45.1.1")
            fill_household(b, "気仙町2", "宮城 花子", "1980-03-03")
            a.keyboard.press("Enter")  # both submitted before either answer is awaited
            b.keyboard.press("Enter")
            for t in (a, b):
                t.wait_for_url(f"{srv.base}/intake?done=*")
                assert "登録しました" in t.locator("main").inner_text()
            shot(a, "lan-tablet-intake-done")
            laptop.goto(f"{srv.base}/admin/devices")
            assert laptop.locator("#devices-table tbody tr").count() == 2
            shot(laptop, "lan-laptop-devices")
            laptop.locator("#revoke-1").focus()  # the newest first: 受付タブレット2
            laptop.keyboard.press("Enter")
            laptop.wait_for_selector("#devices-done")
            b.goto(f"{srv.base}/roster")
            assert b.url.startswith(f"{srv.base}/pair")
            a.goto(f"{srv.base}/roster")
            assert a.url == f"{srv.base}/roster"
        finally:
            browser.close()
    from app.db import open_shelter_db

    engine = open_shelter_db(shelter.db_path)
    try:
        with Session(engine) as s:
            rows = {(e.name_raw, e.created_by) for e in s.exec(select(Evacuee))}
        assert {("岩手 太郎", "佐藤"), ("宮城 花子", "鈴木")} <= rows
    finally:
        engine.dispose()
