"""Kanji name keys: :func:`exact_key` and :func:`variant_key`.

A registry keeps the kanji a person registered (髙橋, 山﨑, 渡邉, 齋藤); a volunteer typing on a
laptop gets 高橋, 山崎, 渡辺, 斎藤 from the IME.  The *exact* key keeps those differences (an exact
match is strong evidence); the *variant* key folds them so the two still meet.

The variant table is generated from the IPA MJ shrink map shipped in jntajis-python, with a
reviewed deny-list and a few additions (see :mod:`matching.data.build_variants`, which also
explains why it is a committed, generated module).  It holds about 20,000 single-character
folds, old/variant form → the most standard form; it is turned into a ``str.translate`` table
once at import (a few milliseconds).

Decisions worth knowing:

* 齋/齊/斎/斉 all fold to 斎: municipal systems treat them as one surname (さいとう).
* 土/士, 未/末, 玉/王, 書/昼, 着/著, 宍/肉 stay distinct: they are different characters, and the
  MJ map's miswriting-based folds for them are denied.
* ヶ/ヵ/ケ/が/ガ (霞ヶ関/霞ケ関/霞が関) fold to ケ, and ノ/の/之 (一ノ瀬/一の瀬/一之瀬) to ノ, but only
  *between two kanji*: a given name written in kana (ちか, のぞみ) is left alone.
* Unmapped gaiji and the geta mark 〓 become :data:`~matching.text.GAIJI_WILDCARD` in the variant
  key; the exact key keeps the private-use code point (it still identifies a person within one
  municipality's data).
"""

from __future__ import annotations

from .data.variants_data import PAIRS as _PAIRS
from .text import GAIJI_WILDCARD, GETA, clean_compact, gaiji_to_wildcard, has_gaiji

__all__ = [
    "VARIANT_TABLE_SIZE",
    "exact_key",
    "variant_key",
    "variant_from_exact",
    "fold_variant_char",
    "is_kanji_char",
]

#: Single-character fold table {ord(source): ord(representative)}, built once at import.
_VARIANT_TABLE: dict[int, int] = {ord(a): ord(b) for a, b in zip(_PAIRS[0::2], _PAIRS[1::2], strict=True)}
VARIANT_TABLE_SIZE = len(_VARIANT_TABLE)

_ITERATION_MARKS = "々〻"

# Characters folded only between two kanji, and what they fold to.
_CONTEXT_FOLD = {
    "ヶ": "ケ", "ヵ": "ケ", "ケ": "ケ", "が": "ケ", "ガ": "ケ", "カ": "ケ",
    "ノ": "ノ", "の": "ノ", "之": "ノ", "乃": "ノ",
}
# ヵ/カ join the group because place names are written 五ヵ所/五カ所/五ヶ所 interchangeably.
# 乃 is the man'yōgana for の in names (木乃本/木之本/木ノ本), so it joins ノ/の/之.


def is_kanji_char(ch: str) -> bool:
    """True for a CJK ideograph (unified, extensions, compatibility), 々/〆/〇, gaiji or wildcard.

    "Kanji" here means "a character of the kanji part of a name", which is why private-use
    gaiji and the wildcard count: they stand for kanji nobody could type.
    """
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x323AF
        or 0xF900 <= cp <= 0xFAFF
        or ch in "々〆〇〻"
        or ch == GAIJI_WILDCARD
        or ch == GETA
        or 0xE000 <= cp <= 0xF8FF
        or 0xF0000 <= cp <= 0x10FFFD
    )


def _expand_iteration(s: str) -> str:
    """々 repeats the previous character: 佐々木 → 佐佐木, so typed 佐佐木 still matches."""
    out: list[str] = []
    for ch in s:
        if ch in _ITERATION_MARKS and out:
            out.append(out[-1])
        else:
            out.append(ch)
    return "".join(out)


def exact_key(s: str) -> str:
    """The kanji text as written, minus encoding noise.

    Variation selectors stripped, NFKC, every kind of whitespace removed (family and given names
    are concatenated by callers), 々 expanded.  Old forms such as 髙 and 﨑 are kept: two exact
    keys are equal only if the name was written the same way.
    """
    if not s:
        return ""
    s = clean_compact(s)
    if "々" in s or "〻" in s:
        s = _expand_iteration(s)
    return s


def _context_fold(s: str) -> str:
    chars = list(s)
    n = len(chars)
    for i in range(1, n - 1):
        rep = _CONTEXT_FOLD.get(s[i])
        if rep is not None and is_kanji_char(s[i - 1]) and is_kanji_char(s[i + 1]):
            chars[i] = rep
    return "".join(chars)


def variant_from_exact(e: str) -> str:
    """:func:`variant_key` for text that is already an :func:`exact_key` (saves re-cleaning)."""
    if not e:
        return ""
    v = e.translate(_VARIANT_TABLE)
    if len(v) > 2 and any(c in v for c in _CONTEXT_FOLD):
        v = _context_fold(v)
    if GETA in v or has_gaiji(v):
        v = gaiji_to_wildcard(v)
    return v


def variant_key(s: str) -> str:
    """:func:`exact_key` with variant kanji folded to one standard form.

    髙橋→高橋, 山﨑/山嵜→山崎, 渡邉/渡邊→渡辺, 齋藤/齊藤/斉藤→斎藤, 霞が関→霞ケ関, 一之瀬→一ノ瀬;
    unmapped gaiji and 〓 → :data:`~matching.text.GAIJI_WILDCARD`.  Idempotent.
    """
    return variant_from_exact(exact_key(s))


def fold_variant_char(ch: str) -> str:
    """The standard form of one character (itself when it has no variant fold)."""
    return ch.translate(_VARIANT_TABLE)
