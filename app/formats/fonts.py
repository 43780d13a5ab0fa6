"""The Japanese font embedded in every PDF Anpi writes (certificates, safety-confirmation lists).

Why IPAexGothic: a PDF that only names a font (reportlab's built-in CID fonts such as
HeiseiMin-W3) prints as boxes on a laptop without that font, and shelter laptops are whatever was
donated. IPAexGothic is a TrueType font that reportlab can subset and embed, its licence (IPA Font
License v1.0, see NOTICE) allows embedding in documents and redistributing the file unmodified, so
it is shipped as package data (`app/formats/ipafont/`, with its licence text): a fresh clone, a wheel
and the one-file binary all carry it without any download, and without the matplotlib/numpy stack
that japanize-matplotlib (where the file used to come from) pulled in.

A binary built by PyInstaller may put the font elsewhere; `ANPI_FONT_PATH` overrides the lookup.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

#: the name under which the font is registered with reportlab
FONT_NAME = "IPAexGothic"
_FILE = "ipaexg.ttf"
#: the font and its licence text, shipped as package data
FONT_DIR = Path(__file__).with_name("ipafont")


class FontMissing(RuntimeError):
    """The Japanese font is not installed; PDFs cannot be written.

    Says how the one HTTP mapping (``sync.http_errors``) answers it, like every error class: 503
    ``font_missing`` (``app.formats`` cannot import ``app.services.errors``, so it is not an
    ``Unavailable`` but answers as one)."""

    status = 503
    code = "font_missing"
    message_ja = "日本語フォントが見つからないため、PDFを作成できません"


def font_path() -> Path:
    """Where ipaexg.ttf is: ANPI_FONT_PATH, a PyInstaller bundle, or this package's ipafont/ folder."""
    from app.config import Settings

    env = Settings.from_env().font_path
    candidates: list[Path] = [env] if env else []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "fonts" / _FILE)
    candidates.append(FONT_DIR / _FILE)
    for c in candidates:
        if c.is_file():
            return c
    raise FontMissing(
        f"Japanese font ipaexg.ttf not found in {FONT_DIR} (reinstall Anpi or set ANPI_FONT_PATH)"
    )


@lru_cache(maxsize=1)
def register_japanese_font() -> str:
    """Register IPAexGothic with reportlab once per process; returns the font name to use."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_path())))
    return FONT_NAME
