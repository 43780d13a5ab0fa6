"""The kiosk's message catalogs (kiosk_ui/locale): every message of the /self templates is in the
template file (self.pot) and translated in every language, with its placeholders kept."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.services.self_registration import LANGS
from app.web.self_i18n import LOCALE_DIR, catalog_path, translations

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")


def pot_ids() -> set[str]:
    with (LOCALE_DIR / "self.pot").open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def test_the_template_file_holds_exactly_the_messages_of_the_templates(tmp_path: Path) -> None:
    out = tmp_path / "fresh.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "kiosk_ui/babel.cfg", "-o", str(out),
                    "--no-location", "--omit-header", "kiosk_ui"], cwd=ROOT, check=True,
                   capture_output=True)
    with out.open("rb") as f:
        fresh = {m.id for m in read_po(f) if m.id}
    assert fresh == pot_ids(), "run the pybabel extract command in kiosk_ui/babel.cfg and translate the new messages"


@pytest.mark.parametrize("lang", [lang for lang in LANGS if lang != "en"])
def test_every_message_is_translated_with_its_placeholders(lang: str) -> None:
    with catalog_path(lang).open("rb") as f:
        cat = read_po(f)
    ids = {m.id: m for m in cat if m.id}
    assert set(ids) == pot_ids()
    for mid, m in ids.items():
        assert m.string and m.string.strip(), f"{lang}: {mid!r} is not translated"
        assert not m.fuzzy, f"{lang}: {mid!r} is fuzzy"
        assert sorted(PLACEHOLDER.findall(m.string)) == sorted(PLACEHOLDER.findall(mid)), f"{lang}: {mid!r}"
        if len(mid) > 12:
            assert m.string != mid, f"{lang}: {mid!r} left in English"
    assert translations(lang).gettext("Send to the reception desk") != "Send to the reception desk"


def test_the_glossary_words_are_the_ones_used() -> None:
    """避難所 / 世帯 / 同意 are rendered with the glossary's word (NOTICE): a reviewer changing one changes all."""
    glossary = {"ja": ("避難所", "世帯", "同意"), "zh_Hans": ("避难所",), "ko": ("대피소", "세대", "동의"),
                "vi": ("nơi sơ tán", "hộ gia đình", "đồng ý"), "ne": ("आश्रयस्थल", "सहमति")}
    for lang, words in glossary.items():
        text = catalog_path(lang).read_text(encoding="utf-8").lower()
        for w in words:
            assert w in text, f"{lang}: the glossary word {w} is not used"
