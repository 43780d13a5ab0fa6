"""The Japanese font embedded in every PDF Anpi writes (certificates, safety-confirmation lists).

Why IPAexGothic: a PDF that only names a font (reportlab's built-in CID fonts such as
HeiseiMin-W3) prints as boxes on a laptop without that font, and shelter laptops are whatever was
donated. IPAexGothic is a TrueType font that reportlab can subset and embed, its licence (IPA Font
License v1.0, see NOTICE) allows embedding in documents, and it reaches us inside a pip dependency
(japanize-matplotlib ships `fonts/ipaexg.ttf`), so a fresh clone and the one-file binary both carry
it without any download. We locate the file without importing that package (importing it would
load matplotlib for nothing).

A binary built by PyInstaller may put the font elsewhere; `ANPI_FONT_PATH` overrides the lookup.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

#: the name under which the font is registered with reportlab
FONT_NAME = "IPAexGothic"
_FILE = "ipaexg.ttf"


class FontMissing(RuntimeError):
    """The Japanese font is not installed; PDFs cannot be written."""


def font_path() -> Path:
    """Where ipaexg.ttf is: ANPI_FONT_PATH, a PyInstaller bundle, or the japanize_matplotlib package."""
    env = os.environ.get("ANPI_FONT_PATH")
    candidates: list[Path] = [Path(env)] if env else []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "fonts" / _FILE)
    spec = importlib.util.find_spec("japanize_matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates.append(Path(loc) / "fonts" / _FILE)
    for c in candidates:
        if c.is_file():
            return c
    raise FontMissing(
        "Japanese font ipaexg.ttf not found (install the japanize-matplotlib package or set ANPI_FONT_PATH)"
    )


@lru_cache(maxsize=1)
def register_japanese_font() -> str:
    """Register IPAexGothic with reportlab once per process; returns the font name to use."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_path())))
    return FONT_NAME
