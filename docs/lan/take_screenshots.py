"""The pictures of the README's "a laptop, a Wi-Fi hotspot and two tablets" guide, taken with Chromium.

Runs `anpi serve --lan` as the CLI builds it on this machine's loopback (nothing leaves it) with the
demo database; the laptop's screen is told the address a Windows mobile hotspot gives the laptop
(192.168.137.1), and the tablets' browsers open that address, which a relay on this machine
(tests/web/server.py) takes to 127.0.0.1 from 127.0.0.2: the pictures show what a shelter would
see, the server treats the tablets as devices on the network, and no packet leaves loopback.

    .venv/bin/python docs/lan/take_screenshots.py      # writes docs/lan/*.png
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

HOTSPOT = "192.168.137.1"  # shown, never connected to: the relay takes every tablet to 127.0.0.1
VIEW_LAPTOP = {"width": 1366, "height": 768}
VIEW_TABLET = {"width": 1024, "height": 768}


def serve(db: Path):  # type: ignore[no-untyped-def]
    import uvicorn

    from app import cli_lan
    from app.db import open_shelter_db
    from app.main import create_app
    from app.services.lan_tls import LanInfo
    from tests.web.server import free_port

    import socket

    port = 8443  # the default of anpi serve --lan, as in the README; another one when it is taken
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            port = free_port()
    engine = open_shelter_db(db)
    info, tls = cli_lan.prepare(engine, "127.0.0.1", port)
    cert_pem = tls.cert_file.read_text()
    app = create_app(db, lan=LanInfo(info.fingerprint, (f"https://{HOTSPOT}:{port}",)))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", proxy_headers=False,
                            ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file),
                            ssl_keyfile_password=tls.key_password)
    config.load()
    cli_lan.cleanup(tls)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port, cert_pem


def log_in(page, base: str, name: str, pin: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/switch")
    page.get_by_text(name, exact=True).click()
    page.locator("#pin").focus()  # the page's script moves there too, once it has loaded
    page.keyboard.type(pin)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/dashboard")


def main() -> int:
    from playwright.sync_api import sync_playwright

    from app.db import open_shelter_db
    from app.db_crypto import PASSPHRASE_ENV
    from app.services.demo import DEMO_PASSPHRASE, build_demo
    from app.services.lan_tls import spki_pin
    from tests.web.server import CHROMIUM, CHROMIUM_ARGS, tablet_relay

    os.environ.setdefault(PASSPHRASE_ENV, DEMO_PASSPHRASE)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        engine = open_shelter_db(db)
        build_demo(engine, residents=500)
        engine.dispose()
        server, port, cert_pem = serve(db)
        base, hotspot = f"https://127.0.0.1:{port}", f"https://{HOTSPOT}:{port}"
        with tablet_relay(any_host=True) as relay, sync_playwright() as p:
            plain = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, "--lang=ja"])
            warn = plain.new_context(viewport=VIEW_TABLET, locale="ja-JP", proxy={"server": relay}).new_page()
            try:
                warn.goto(f"{hotspot}/pair")
            except Exception:  # noqa: BLE001 - the certificate warning is what we photograph
                pass
            warn.screenshot(path=str(HERE / "4-tablet-certificate-warning.png"))
            plain.close()
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                        args=[*CHROMIUM_ARGS, "--lang=ja", f"--ignore-certificate-errors-spki-list={spki_pin(cert_pem)}"])
            laptop = browser.new_context(viewport=VIEW_LAPTOP, locale="ja-JP").new_page()
            log_in(laptop, base, "管理 三郎", "9999")
            laptop.goto(f"{base}/admin/devices")
            laptop.locator("#code-button").focus()
            laptop.keyboard.press("Enter")
            laptop.wait_for_selector("#pair-code-value")
            laptop.screenshot(path=str(HERE / "3-laptop-devices-code.png"), full_page=True)
            tablets = []
            for i, (name, pin) in enumerate((("山田 花子", "1111"), ("佐々木 健", "2222")), 1):
                if i == 2:
                    laptop.locator("#code-button").focus()
                    laptop.keyboard.press("Enter")
                    laptop.wait_for_selector("#pair-code-value")
                code = laptop.locator("#pair-code-value").inner_text().replace(" ", "")
                tab = browser.new_context(viewport=VIEW_TABLET, locale="ja-JP", proxy={"server": relay}).new_page()
                tab.goto(f"{hotspot}/pair")
                tab.locator("#name").focus()
                tab.keyboard.insert_text(f"受付タブレット{i}")
                tab.keyboard.press("Tab")
                tab.keyboard.type(code)
                if i == 1:
                    tab.screenshot(path=str(HERE / "5-tablet-pair.png"))
                tab.keyboard.press("Enter")
                tab.wait_for_url(f"{hotspot}/switch**")
                log_in(tab, hotspot, name, pin)
                tablets.append(tab)
            tab = tablets[0]
            tab.goto(f"{hotspot}/intake")
            tab.locator("#address").focus()
            tab.keyboard.insert_text("陸前高田市高田町字館の沖12-3")
            tab.locator("#m-0-name").focus()
            tab.keyboard.insert_text("岩手 太郎")
            tab.locator("#m-0-birth_date").focus()
            tab.keyboard.type("S45.3.1")
            tab.locator("#intake-submit").focus()
            tab.keyboard.press("Enter")
            tab.wait_for_url(f"{hotspot}/intake?done=*")
            tab.screenshot(path=str(HERE / "6-tablet-intake-done.png"))
            laptop.goto(f"{base}/admin/devices")
            laptop.screenshot(path=str(HERE / "6-laptop-device-list.png"), full_page=True)
            browser.close()
        server.should_exit = True
    print(f"screenshots written to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
