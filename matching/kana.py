"""Katakana name keys, from strict to loose.

Readings reach us in every shape: the registry's katakana (sometimes from systems without small
kana, so キョウコ is stored キヨウコ), hiragana typed in a roster, half-width katakana from old
terminals (ｻﾄｳ), long-vowel marks (サトー) and spelled-out long vowels (サトウ).  Each key folds a
little more, so the scorer can say *how* two readings agree:

``strict_key``
    katakana only; spaces, middle dots, punctuation and non-kana dropped.  Two strict keys are
    equal when the readings are written the same way.
``loose_key``
    also ignores small/large kana (ャ=ヤ, ッ=ツ), ヂ/ジ ヅ/ズ ヲ/オ ヴ/ブ ヰ/イ ヱ/エ, and vowel
    length.  Canonical reduction of length: a long-vowel mark ``ー`` is dropped, and a vowel kana
    is dropped after a kana of the same vowel, ウ also after an お-row kana.  So サトウ/サトー/サト
    → ``サト``, オオノ/オーノ/オノ → ``オノ``, キョウコ/キヨウコ/キヨコ → ``キヨコ``, ユウコ → ``ユコ``.
    エイ is *not* reduced (ケイコ stays ケイコ): it is written out in every romanisation too.
``devoiced_key``
    also drops dakuten/handakuten (ナカジマ = ナカシマ, ハラ = バラ = パラ).

Everything is ``str.translate`` tables built at import plus one precompiled regex, because the
registry import computes these for a million rows.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

from .text import clean

__all__ = [
    "to_katakana",
    "strict_key",
    "loose_key",
    "loose_from_strict",
    "join_loose",
    "pre_skeleton",
    "devoiced_key",
    "devoice",
    "is_kana",
    "KATAKANA_VOWEL",
]

# U+309B/U+309C (spacing dakuten/handakuten) NFKC-decompose to "space + combining mark", which
# would never recombine with the kana before them.  Turn them into the combining marks first.
_SPACING_MARKS = str.maketrans({"\u309b": "\u3099", "\u309c": "\u309a"})

_NOT_KATAKANA = re.compile(r"[^\u30a1-\u30fa\u30fc\u30fd\u30fe]+")
_KATAKANA_ONLY = re.compile(r"[\u30a1-\u30fa\u30fc]*")

_SMALL_TO_LARGE = {
    "ァ": "ア", "ィ": "イ", "ゥ": "ウ", "ェ": "エ", "ォ": "オ", "ッ": "ツ", "ャ": "ヤ", "ュ": "ユ",
    "ョ": "ヨ", "ヮ": "ワ", "ヵ": "カ", "ヶ": "ケ",
}
_LOOSE_TABLE = str.maketrans(
    {
        **_SMALL_TO_LARGE,
        "ヂ": "ジ", "ヅ": "ズ", "ヲ": "オ", "ヴ": "ブ", "ヰ": "イ", "ヱ": "エ",
        "ヷ": "バ", "ヸ": "ビ", "ヹ": "ベ", "ヺ": "ボ", "ー": None,
    }
)

_ROWS = {
    "A": "アカサタナハマヤラワガザダバパ",
    "I": "イキシチニヒミリギジビピ",
    "U": "ウクスツヌフムユルグズブプ",
    "E": "エケセテネヘメレゲゼデベペ",
    "O": "オコソトノホモヨロゴゾドボポ",
}
#: Vowel ("A".."O") of each large, loose-folded katakana, for scorers that compare readings.
KATAKANA_VOWEL: dict[str, str] = {ch: v for v, row in _ROWS.items() for ch in row}

_VOWEL_LENGTH = re.compile(
    f"(?<=[{_ROWS['A']}])ア+"
    f"|(?<=[{_ROWS['I']}])イ+"
    f"|(?<=[{_ROWS['U']}])ウ+"
    f"|(?<=[{_ROWS['E']}])エ+"
    f"|(?<=[{_ROWS['O']}])[オウ]+"
)

_DEVOICE_TABLE = str.maketrans(
    "ガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポヴ",
    "カキクケコサシスセソタチツテトハヒフヘホハヒフヘホウ",
)
_VOICE = dict(
    zip("カキクケコサシスセソタチツテトハヒフヘホウ", "ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ", strict=True)
)


def to_katakana(s: str) -> str:
    """Hiragana and half-width katakana (with ﾞ/ﾟ combinations) → full-width katakana.

    NFKC composes half-width sequences (ｶﾞ → ガ, ｳﾞ → ヴ) and jaconv maps hiragana to katakana
    (ゔ → ヴ).  Everything else (spaces, kanji, latin) is kept; use :func:`strict_key` to drop it.
    """
    if not s:
        return ""
    if "\u309b" in s or "\u309c" in s:
        s = s.translate(_SPACING_MARKS)
    k = jaconv.hira2kata(clean(s))
    if "\u3099" in k or "\u309a" in k:
        # わ+゛ has no hiragana composite but ワ+゛ does (ヷ): compose after the kana change.
        k = unicodedata.normalize("NFC", k)
    return k


def _expand_kana_iteration(s: str) -> str:
    out: list[str] = []
    for ch in s:
        if ch == "ヽ" and out:
            out.append(out[-1])
        elif ch == "ヾ" and out:
            out.append(_VOICE.get(out[-1], out[-1]))
        elif ch not in "ヽヾ":
            out.append(ch)
    return "".join(out)


def strict_key(s: str) -> str:
    """Katakana reading with everything that is not katakana removed.

    Spaces (half/full-width), middle dots, punctuation, digits, latin and kanji are dropped; the
    long-vowel mark ー is kept (it is part of the reading); ヽ/ヾ are expanded (サヽキ → ササキ).
    """
    if not s:
        return ""
    k = to_katakana(s)
    if not _KATAKANA_ONLY.fullmatch(k):
        k = _NOT_KATAKANA.sub("", k)
        if "ヽ" in k or "ヾ" in k:
            k = _expand_kana_iteration(k)
    return k


def loose_from_strict(k: str) -> str:
    """:func:`loose_key` of a string that is already a :func:`strict_key`."""
    if not k:
        return ""
    return _VOWEL_LENGTH.sub("", k.translate(_LOOSE_TABLE))


def loose_key(s: str) -> str:
    """Reading key that ignores small kana, ヂ/ジ-type spellings and vowel length (see module doc)."""
    return loose_from_strict(strict_key(s))


_DELETABLE_AFTER: dict[str, str] = {}
for _v, _row in _ROWS.items():
    for _ch in _row:
        _DELETABLE_AFTER[_ch] = {"A": "ア", "I": "イ", "U": "ウ", "E": "エ", "O": "オウ"}[_v]


def join_loose(a: str, b: str) -> str:
    """``loose_from_strict(x + y)`` from ``a = loose_from_strict(x)`` and ``b = loose_from_strict(y)``.

    Vowel length folds across the boundary (サト + ウメ → サトメ, like サトウメ), so loose keys of
    family and given names cannot just be concatenated; this fixes the boundary in O(1) and lets
    callers cache the per-part keys.
    """
    if not a:
        return b
    if not b:
        return a
    dele = _DELETABLE_AFTER.get(a[-1])
    if dele and b[0] in dele:
        i = 1
        n = len(b)
        while i < n and b[i] in dele:
            i += 1
        b = b[i:]
    return a + b


# Same as the loose table, except that ッ (and ヽ/ヾ) vanish instead of becoming ツ: the romaji
# skeleton writes ッ as a doubled consonant, which it then collapses.
_PRE_SKELETON_TABLE = str.maketrans(
    {
        **_SMALL_TO_LARGE,
        "ッ": None, "ヽ": None, "ヾ": None,
        "ヂ": "ジ", "ヅ": "ズ", "ヲ": "オ", "ヴ": "ブ", "ヰ": "イ", "ヱ": "エ",
        "ヷ": "バ", "ヸ": "ビ", "ヹ": "ベ", "ヺ": "ボ", "ー": None,
    }
)


def pre_skeleton(k: str) -> str:
    """Katakana folded the way :mod:`matching.romaji` folds a romanisation (input: a strict key).

    Like :func:`loose_from_strict` but ッ is dropped rather than enlarged; two of these join with
    :func:`join_loose`.  :func:`matching.romaji.skeleton_from_pre` turns it into the skeleton.
    """
    if not k:
        return ""
    return _VOWEL_LENGTH.sub("", k.translate(_PRE_SKELETON_TABLE))


def devoice(k: str) -> str:
    """Drop dakuten/handakuten from katakana (ガ→カ, パ→ハ, ヴ→ウ); other characters unchanged."""
    return k.translate(_DEVOICE_TABLE)


def devoiced_key(s: str) -> str:
    """:func:`loose_key` without dakuten/handakuten: ナカジマ = ナカシマ, ヤマザキ = ヤマサキ."""
    return devoice(loose_key(s))


_KANA_OR_SEP = re.compile(r"[\u30a1-\u30fa\u30fc\u30fd\u30fe\u30fb\s]+")


def is_kana(s: str) -> bool:
    """True if ``s`` has at least one kana and nothing but kana (any width), spaces and ・/ー."""
    if not s:
        return False
    k = to_katakana(s)
    return bool(_KANA_OR_SEP.fullmatch(k)) and bool(_NOT_SEP_KANA.search(k))


_NOT_SEP_KANA = re.compile(r"[\u30a1-\u30fa\u30fd\u30fe]")
