"""本人記入 in headless Chromium (issue 15 part 2): the kiosk screen in every language on a 360×740
phone and a 1366×768 screen — no English source string left on a translated page, nothing wider
than the screen, touch targets big enough — then a family filling it in on a phone and staff
finishing intake from the queue with the fields prefilled and the registry match made at once,
and the form erased after inactivity. Screenshots: test-output/screenshots/self_*.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.services.self_registration import LANGS
from app.web.self_i18n import LOCALE_DIR
from tests.web.helpers import build_shelter
from tests.web.server import CHROMIUM, serve
from tests.web.test_browser_flow import browser, expect, shot, switch_user, tab_to  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

if not CHROMIUM.exists():
    pytestmark.append(pytest.mark.skip(reason="!!! /usr/bin/chromium is missing: browser tests NOT RUN !!!"))

SIZES = [(360, 740), (1366, 768)]
#: the English source strings (msgids) as a page shows them, placeholders filled
with (LOCALE_DIR / "self.pot").open("rb") as _f:
    SOURCE = [m.id.replace("%(n)s", "2").replace("%(minutes)s", "3") for m in read_po(_f) if m.id]


def untranslated(text: str) -> list[str]:
    """The source strings on the page, as whole words ("Sex" is not in "Sexo", "No" not in "Nome")."""
    return [s for s in SOURCE if re.search(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text)]


def check_layout(page, width: int) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "wider than the screen"
    small = page.evaluate("""() => Array.from(document.querySelectorAll('main input:not([type=hidden]), main select, main button, main a, nav a'))
        .filter(e => e.offsetParent !== null)
        .map(e => { const r = (e.closest('label.check') || e).getBoundingClientRect(); return [e.id || e.name || e.textContent, r.height]; })
        .filter(([_, h]) => h < 44)""")
    assert not small, f"touch targets under 44 px: {small}"


@pytest.mark.parametrize("lang", LANGS)
def test_every_language_on_a_phone_and_a_laptop(tmp_path: Path, browser, lang: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANPI_SELF_MAX_REQUESTS", "1000")
    sh = build_shelter(tmp_path, evacuees=False)
    with serve(sh.db_path) as base:
        for width, height in SIZES:
            ctx = browser.new_context(viewport={"width": width, "height": height}, has_touch=width < 400)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/self?lang={lang}")
            assert page.get_attribute("html", "lang") == ("ja" if lang == "easy" else lang)
            seen = [page.locator("main").inner_text()]
            check_layout(page, width)
            shot(page, f"self_{lang}_{width}")
            page.click("#add-person")  # a second person, then sent without a name: the messages
            page.fill("#m-0-birth_date", "someday")
            page.fill("#m-1-birth_date", "someday")
            page.click("#send")
            expect(page.locator("#form-error")).to_be_visible()
            seen.append(page.locator("main").inner_text())
            for err in ("m-0-name", "m-0-birth_date", "m-1-name", "m-1-birth_date"):
                assert page.locator(f"#{err}-err").is_visible(), err
            check_layout(page, width)
            shot(page, f"self_{lang}_{width}_errors")
            if width < 400:
                page.fill("#m-0-name", "高橋 一郎")
                page.fill("#m-0-birth_date", "S45.3.1")
                page.fill("#m-1-name", "高橋 京子")
                page.fill("#m-1-birth_date", "78")
                page.click("#send")
                expect(page.locator("#ticket")).to_be_visible()
                seen.append(page.locator("main").inner_text())
                check_layout(page, width)
                shot(page, f"self_{lang}_{width}_sent")
            if lang != "en":
                for text in seen:
                    assert not untranslated(text), f"{lang} {width}px: {untranslated(text)}"
            else:  # the scan does find the source strings where they belong
                assert len(untranslated(seen[0])) > 30 and len(untranslated(seen[1])) > 30
            assert not errors
            ctx.close()


def test_a_family_on_a_phone_then_the_desk_finishes_intake(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path, evacuees=False)
    with serve(sh.db_path) as base:
        phone = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True).new_page()
        phone.goto(f"{base}/self?lang=ja")
        phone.fill("#address", "陸前高田市高田町字館の沖12-3")
        phone.fill("#contact", "090-1234-5678")
        phone.fill("#m-0-name", "高橋 一郎")
        phone.fill("#m-0-name_kana", "タカハシ イチロウ")
        phone.fill("#m-0-birth_date", "昭和45年3月1日")
        phone.select_option("#m-0-sex", "男")
        phone.tap("#add-person")
        expect(phone.locator("#m-1-name")).to_be_focused()  # the new person's name, ready to type
        phone.keyboard.insert_text("高橋 京子")
        phone.fill("#m-1-birth_date", "S47.11.3")
        phone.select_option("#m-1-sex", "女")
        phone.fill("#m-1-relationship", "妻")
        phone.tap("#m-1-care-allergy")
        phone.fill("#m-1-allergy_detail", "そば")
        phone.tap("#consent_relatives-yes")
        phone.tap("#consent_acquaintances-yes")
        phone.tap("#consent_public-no")
        shot(phone, "self_family_phone")
        phone.tap("#send")
        expect(phone.locator("#ticket")).to_have_text("1")
        shot(phone, "self_family_sent")
        assert "高橋" not in phone.content()  # the thank-you page shows no name

        desk = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP").new_page()
        desk.goto(f"{base}/switch")
        switch_user(desk, base, "佐藤", "1234")
        desk.goto(f"{base}/intake/self-queue")
        row = desk.locator("#entry-1")
        expect(row).to_contain_text("高橋 一郎")
        expect(row).to_contain_text("2人")
        shot(desk, "self_queue_desk")
        tab_to(desk, "open-1")  # keyboard only at the desk
        desk.keyboard.press("Enter")
        expect(desk.locator("#self-entry-box")).to_contain_text("受付番号 1")
        assert desk.input_value("#address") == "陸前高田市高田町字館の沖12-3"
        assert desk.input_value("#m-0-birth_date") == "昭和45年3月1日" and desk.input_value("#m-1-name") == "高橋 京子"
        assert desk.input_value("#m-1-relationship") == "妻" and desk.is_checked("#m-1-care-allergy")
        expect(desk.locator("#m-1-allergy_detail")).to_be_visible()  # 詳細 open: what the person typed is in view
        assert desk.is_checked("input[name=m-1-consent_public][value=no]")
        # the registry candidates are looked up at once, without typing anything
        expect(desk.locator("#m-0-cands")).to_contain_text("宛名番号 1001")
        expect(desk.locator("#m-1-cands")).to_contain_text("宛名番号 1002")
        shot(desk, "self_queue_prefilled")
        desk.keyboard.press("Control+Enter")  # after checking the person's identity: register
        desk.wait_for_url(f"{base}/intake?done=*")
        done = desk.locator("#done-box").inner_text()
        assert "登録しました（2人）" in done and "高橋 一郎（台帳と照合済み）" in done and "高橋 京子（台帳と照合済み）" in done
        shot(desk, "self_queue_done")
        desk.goto(f"{base}/intake/self-queue")
        expect(desk.locator("#self-queue-empty")).to_be_visible()


def test_an_idle_form_is_erased_here_and_on_the_server(tmp_path: Path, browser, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANPI_SELF_IDLE_SECONDS", "2")
    sh = build_shelter(tmp_path, evacuees=False)
    with serve(sh.db_path) as base:
        page = browser.new_context(viewport={"width": 360, "height": 740}).new_page()
        page.goto(f"{base}/self?lang=en")
        page.fill("#m-0-name", "Nguyen Van An")
        page.click("#add-person")  # the server now holds a draft of this form
        page.fill("#m-1-name", "Tran Thi B")
        page.wait_for_url("**/self?lang=en&timeout=1", timeout=8000)
        expect(page.locator("#timed-out")).to_be_visible()
        assert page.input_value("#m-0-name") == "" and page.locator("#m-1-name").count() == 0
        page.reload()  # nothing comes back from the server either
        assert page.input_value("#m-0-name") == ""
        shot(page, "self_timed_out")
