"""The kiosk's languages: gettext catalogs in kiosk_ui/locale/<lang>/LC_MESSAGES/self.po.

Why the .po files are read at start and no .mo is committed or built: a fresh clone then works
with the README's two commands (no compile step to forget, no binary file that can drift from
its source); Babel parses and compiles the few hundred messages in milliseconds. English is the
source language (the msgids), so `en` needs no catalog. A message missing from a catalog shows
its English msgid — which tests/web/test_self_registration.py looks for on every rendered page.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from app.services.self_registration import LANGS
from app.web.common import UI_DIR

LOCALE_DIR = UI_DIR / "locale"
DOMAIN = "self"
#: each language's name in its own script, for the language menu (never translated)
LANG_NAMES = {"easy": "やさしい にほんご", "ja": "日本語", "en": "English", "zh-Hans": "简体中文", "ko": "한국어",
              "vi": "Tiếng Việt", "pt": "Português", "tl": "Tagalog", "ne": "नेपाली"}


def html_lang(lang: str) -> str:
    """The page's `<html lang>`: やさしい日本語 is Japanese."""
    return "ja" if lang == "easy" else lang


def pick_lang(value: str | None) -> str:
    return value if value in LANGS else "ja"


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
def translations(lang: str) -> NullTranslations:
    """The compiled catalog of `lang` (English: the msgids themselves)."""
    if lang == "en":
        return NullTranslations()
    with catalog_path(lang).open("rb") as f:
        catalog = read_po(f, locale=None, domain=DOMAIN)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)
