"""Unicode clean-up shared by every normaliser in :mod:`matching`.

Everything here is a pure function from ``str`` to a *new* ``str``: raw text as it came from the
registry or the roster is never changed, callers keep it for display and audit and derive keys
from it.

Why each step exists:

* **NFKC** folds the ways the same name arrives from different software: full-width ASCII and
  digits (``ＡＢ１２``), half-width katakana (``ｶﾞ`` → ``ガ``), the ideographic space, era
  ligatures (``㍼`` → ``昭和``) and the CJK compatibility ideographs that have a *canonical*
  decomposition (U+FA19 神 → U+795E 神).  It does **not** touch the twelve compatibility-block
  code points that are really unified ideographs (U+FA0E…U+FA29, among them U+FA11 﨑), nor
  unified old forms such as 髙 (U+9AD9) or 𠮷 (U+20BB7): those survive into the exact kanji key
  and are folded only by :func:`matching.kanji.variant_key`.
* **Variation selectors** (U+FE00–FE0F, IVS U+E0100–E01EF) pick a glyph of the same character
  (葛 with or without the 󠄀 selector).  Registry systems that know MJ glyphs emit them, kiosks
  never do, so they are dropped before any comparison.
* **Gaiji** are municipality-specific private-use code points (ARCHITECTURE.md §3).  A gaiji map turns
  the known ones into standard characters; unknown ones are kept (they still mean *something*)
  and keys replace them with :data:`GAIJI_WILDCARD` so comparison can skip that position.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

__all__ = [
    "GAIJI_WILDCARD",
    "GETA",
    "nfkc",
    "strip_variation_selectors",
    "clean",
    "clean_compact",
    "is_gaiji",
    "has_gaiji",
    "apply_gaiji",
    "gaiji_to_wildcard",
]

#: Marker that replaces a character nobody can type (an unmapped gaiji, or the geta mark 〓 that
#: staff type for "a kanji I cannot enter").  Kanji comparison treats it as "any one character".
GAIJI_WILDCARD = "\ufffd"

#: 〓 (GETA MARK): what the UI shows for an unmapped gaiji and what staff type for one.
GETA = "\u3013"

_VS_DELETE: dict[int, None] = {cp: None for cp in range(0xFE00, 0xFE10)}
_VS_DELETE.update({cp: None for cp in range(0xE0100, 0xE01F0)})
# Zero-width and bidi formatting characters sneak in from copy-and-paste (Excel, web forms);
# they are invisible, so two "identical" names differ.  Drop them with the selectors.
_VS_DELETE.update({cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x200E, 0x200F)})
_VS_DELETE.update({cp: None for cp in range(0x202A, 0x202F)})
_VS_DELETE.update({cp: None for cp in range(0x180B, 0x1810)})  # Mongolian selectors, same idea
# str.translate looks every character up in the dict (slow for CJK text), so search first.
_VS_RE = re.compile(
    "[\ufe00-\ufe0f\U000e0100-\U000e01ef\u200b-\u200f\u2060\ufeff\u202a-\u202e\u180b-\u180f]"
)


def nfkc(s: str) -> str:
    """Return the NFKC form of ``s``.

    A thin wrapper so every module uses the same normal form; ``unicodedata.is_normalized`` makes
    the common already-normalised case (registry text) cheap.
    """
    if unicodedata.is_normalized("NFKC", s):
        return s
    return unicodedata.normalize("NFKC", s)


def strip_variation_selectors(s: str) -> str:
    """Remove variation selectors (standard and ideographic) and invisible format characters.

    They choose a glyph, not a character: 葛󠄀 and 葛 are the same name for matching.
    """
    if _VS_RE.search(s) is None:
        return s
    return s.translate(_VS_DELETE)


def clean(s: str) -> str:
    """Variation selectors stripped, then NFKC: the first step of every key.

    Selectors go first so that NFKC never sees a selector between a base character and a
    following combining mark.  The result is idempotent: ``clean(clean(s)) == clean(s)``.
    """
    if _VS_RE.search(s) is not None:
        s = s.translate(_VS_DELETE)
    return nfkc(s)


_SPACING_MARKS = str.maketrans({"\u309b": "\u3099", "\u309c": "\u309a"})


def clean_compact(s: str) -> str:
    """:func:`clean` with every whitespace character removed, for keys that ignore spacing.

    The spacing dakuten/handakuten ゛゜ become combining marks first (NFKC would turn them into
    "space + mark"), and the text is normalised again when removing whitespace brought a
    combining mark next to its base (ふ ゙ → ぶ).  Idempotent.
    """
    if "\u309b" in s or "\u309c" in s:
        s = s.translate(_SPACING_MARKS)
    s = clean(s)
    t = "".join(s.split())
    if len(t) != len(s):
        t = nfkc(t)
    return t


def is_gaiji(ch: str) -> bool:
    """True if ``ch`` is a private-use code point (BMP U+E000–U+F8FF, planes 15 and 16).

    Municipal systems put their own kanji (外字) there; the same code point means different
    characters in different municipalities, so it can only be resolved with that municipality's
    gaiji map.
    """
    if len(ch) != 1:
        return False
    cp = ord(ch)
    return 0xE000 <= cp <= 0xF8FF or 0xF0000 <= cp <= 0xFFFFD or 0x100000 <= cp <= 0x10FFFD


def has_gaiji(s: str) -> bool:
    """True if ``s`` contains at least one private-use character (see :func:`is_gaiji`)."""
    # Fast reject: every private-use code point sorts at or above U+E000.
    if not s or max(s) < "\ue000":
        return False
    return any(is_gaiji(ch) for ch in s)


def _key_char(key: str) -> str:
    """Accept a map key either as the character itself or as ``U+E000`` notation."""
    if len(key) == 1:
        return key
    k = key.strip()
    if k[:2].upper() == "U+":
        try:
            return chr(int(k[2:], 16))
        except ValueError:
            return key
    return key


def apply_gaiji(s: str, gaiji_map: Mapping[str, str]) -> str:
    """Replace mapped private-use characters with their standard character.

    ``gaiji_map`` maps a private-use character (or its ``U+XXXX`` notation, as in the gaiji CSV)
    to the standard text for it.  Unmapped private-use characters are kept: they still
    distinguish people within one municipality, and :func:`gaiji_to_wildcard` turns them into
    the wildcard when a key needs it.
    """
    if not gaiji_map or not has_gaiji(s):
        return s
    table: dict[str, str] = {}
    for k, v in gaiji_map.items():
        table[_key_char(k)] = v
    return "".join(table.get(ch, ch) if is_gaiji(ch) else ch for ch in s)


def gaiji_to_wildcard(s: str) -> str:
    """Replace every private-use character and the geta mark 〓 with :data:`GAIJI_WILDCARD`."""
    if GETA in s:
        s = s.replace(GETA, GAIJI_WILDCARD)
    if not has_gaiji(s):
        return s
    return "".join(GAIJI_WILDCARD if is_gaiji(ch) else ch for ch in s)
