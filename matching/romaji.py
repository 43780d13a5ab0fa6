"""Romaji skeletons: one spelling for every way a Japanese name is written in latin letters.

The same person arrives as SATO (passport Hepburn), SATOH (passport "OH" option), SATOU (IME
typing), Satō / Satô (macron / circumflex Hepburn), SATOO (Kunrei-style long vowel); 正治 as
SHOJI, SYOZI (Kunrei/Nihon-shiki), SHOUJI; 本間 as HOMMA or HONMA.  :func:`romaji_skeleton` maps
them all to one string, and :func:`kana_to_skeleton` maps the registry's katakana to the *same*
string, so a name typed in romaji can be compared with the registry's kana.

Why hand-written: the libraries on PyPI convert between one romanisation and kana
(python-romkan-ng, pykakasi's ``passport``/``hepburn``/``kunrei`` outputs) or kanji text to one
romanisation (cutlet, which also needs MeCab and a UniDic dictionary); none folds Hepburn,
Kunrei, Nihon-shiki, passport and IME spellings *together*, which is what matching needs, and
none treats legacy kana without small letters (キヨウコ for キョウコ).  The fold is a few string
replacements and five regexes.

The skeleton (uppercase A–Z, no spaces) is Kunrei-based, with these folds:

* SH→SY, CH→TY, TS→T, J→ZY (JI→ZI), DI/DU/DY→ZI/ZU/ZY (ヂ/ヅ = ジ/ズ), F→H (FU→HU), V→B (ヴ=ブ),
  WO→O, C→K (S before I/E), L→R;
* a consonant followed by Y gains an I (KYO→KIYO), so キョ, legacy キヨ and typed KYO/KIYO agree;
  YE→E after that (シェ = SHE);
* M before B/M/P → N (HOMMA = HONMA); doubled consonants single (HATTORI = HATORI, NN = N);
* vowel length: O followed by O/U, OH before a consonant or the end, and any doubled vowel
  collapse to one (SATO = SATOU = SATOH = SATOO = SATŌ; YUUKI = YŪKI = YUKI).

These mirror :func:`matching.kana.loose_key`, so the skeleton is as loose as the loose kana key
(キヨコ and キョウコ meet), and is meant to be weighted like it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from rapidfuzz import fuzz

from .kana import pre_skeleton, strict_key

__all__ = [
    "romaji_skeleton",
    "kana_to_skeleton",
    "skeleton_from_strict",
    "skeleton_from_pre",
    "alpha_tokens",
    "alpha_token_similarity",
]

# --- kana → Kunrei-ish letters (small kana read as large ones; ッ and ー vanish) -------------
_KANA_ROMAJI = {
    "ア": "A", "イ": "I", "ウ": "U", "エ": "E", "オ": "O",
    "カ": "KA", "キ": "KI", "ク": "KU", "ケ": "KE", "コ": "KO",
    "サ": "SA", "シ": "SI", "ス": "SU", "セ": "SE", "ソ": "SO",
    "タ": "TA", "チ": "TI", "ツ": "TU", "テ": "TE", "ト": "TO",
    "ナ": "NA", "ニ": "NI", "ヌ": "NU", "ネ": "NE", "ノ": "NO",
    "ハ": "HA", "ヒ": "HI", "フ": "HU", "ヘ": "HE", "ホ": "HO",
    "マ": "MA", "ミ": "MI", "ム": "MU", "メ": "ME", "モ": "MO",
    "ヤ": "YA", "ユ": "YU", "ヨ": "YO",
    "ラ": "RA", "リ": "RI", "ル": "RU", "レ": "RE", "ロ": "RO",
    "ワ": "WA", "ヰ": "I", "ヱ": "E", "ヲ": "O", "ン": "N",
    "ガ": "GA", "ギ": "GI", "グ": "GU", "ゲ": "GE", "ゴ": "GO",
    "ザ": "ZA", "ジ": "ZI", "ズ": "ZU", "ゼ": "ZE", "ゾ": "ZO",
    "ダ": "DA", "ヂ": "ZI", "ヅ": "ZU", "デ": "DE", "ド": "DO",
    "バ": "BA", "ビ": "BI", "ブ": "BU", "ベ": "BE", "ボ": "BO",
    "パ": "PA", "ピ": "PI", "プ": "PU", "ペ": "PE", "ポ": "PO",
    "ヴ": "BU", "ヷ": "BA", "ヸ": "BI", "ヹ": "BE", "ヺ": "BO",
    "ァ": "A", "ィ": "I", "ゥ": "U", "ェ": "E", "ォ": "O",
    "ャ": "YA", "ュ": "YU", "ョ": "YO", "ヮ": "WA", "ヵ": "KA", "ヶ": "KE",
    "ッ": "", "ー": "", "ヽ": "", "ヾ": "",
}
_KANA_TABLE = str.maketrans(_KANA_ROMAJI)

# --- romanisation systems → one Kunrei-like spelling (ordered; applied with str.replace) -------
_SYSTEM_FOLDS: tuple[tuple[str, str], ...] = (
    ("CCH", "TCH"),  # っち written ICCHI as well as ITCHI
    ("SHI", "SI"), ("SH", "SY"),
    ("CHI", "TI"), ("CH", "TY"),
    ("TSU", "TU"), ("TS", "T"),
    ("DZ", "Z"),
    ("JI", "ZI"), ("JY", "ZY"), ("J", "ZY"),
    ("DI", "ZI"), ("DU", "ZU"), ("DY", "ZY"),
    ("FU", "HU"), ("F", "HU"),
    ("VU", "BU"), ("V", "BU"),
    ("WO", "O"), ("WI", "UI"), ("WE", "UE"),
    ("CY", "TY"), ("CI", "SI"), ("CE", "SE"), ("C", "K"),
    ("L", "R"), ("Q", "K"), ("X", ""),
)

_CONSONANT_Y = re.compile(r"([BCDFGHJKLMNPQRSTVWXZ])(?=Y)")
_M_BEFORE_LABIAL = re.compile(r"M(?=[BMP])")
_DOUBLE_CONSONANT = re.compile(r"([BCDFGHJKLMNPQRSTVWXYZ])\1+")
_O_RUN = re.compile(r"O[OU]+")
_VOWEL_RUN = re.compile(r"([AIUE])\1+")
_OH = re.compile(r"OH(?![AEIOUY])")
_NOT_UPPER = re.compile(r"[^A-Z]+")
_LONG_MARK = re.compile(r"([AEIOUaeiou])[\u0302\u0304]")


def _fold(s: str) -> str:
    """Shared tail of both skeleton functions (input: A–Z only, Kunrei consonants)."""
    if "Y" in s:
        s = _CONSONANT_Y.sub(r"\1I", s)
        if "YE" in s:
            s = s.replace("YE", "E")
    if "M" in s:
        s = _M_BEFORE_LABIAL.sub("N", s)
    s = _DOUBLE_CONSONANT.sub(r"\1", s)
    if "O" in s:
        s = _O_RUN.sub("O", s)
    s = _VOWEL_RUN.sub(r"\1", s)
    if "OH" in s:
        s = _OH.sub("O", s)
    return s


def romaji_skeleton(s: str) -> str:
    """Canonical skeleton of a romanised Japanese name (see module docstring); idempotent.

    Case, spaces, apostrophes (SHIN'ICHI), hyphens, digits and non-latin text are ignored;
    macron and circumflex vowels count as long vowels.
    """
    if not s:
        return ""
    s = unicodedata.normalize("NFKD", s)
    if "\u0304" in s or "\u0302" in s:
        s = _LONG_MARK.sub(r"\1\1", s)
    s = _NOT_UPPER.sub("", s.upper())
    # One pass can create a pattern an earlier rule handles (S+F → SHU, W+Y → WIY → UIY), so
    # repeat until nothing changes; real names settle in one or two passes.
    for _ in range(8):
        before = s
        for a, b in _SYSTEM_FOLDS:
            if a in s:
                s = s.replace(a, b)
        s = _fold(s)
        if s == before:
            break
    return s


def skeleton_from_pre(p: str) -> str:
    """Skeleton from :func:`matching.kana.pre_skeleton` output (registry fast path).

    Vowel length, small kana and ッ were already folded on the kana; what is left of
    :func:`_fold` for kana-derived letters is ン before ヤ/ユ/ヨ (NY → NIY) and ンナ-type NN → N.
    ``tests/matching`` checks that this equals the general fold for arbitrary katakana.
    """
    if not p:
        return ""
    r = p.translate(_KANA_TABLE)
    if "N" in r:
        if "NY" in r:
            r = r.replace("NY", "NIY")
        while "NN" in r:
            r = r.replace("NN", "N")
    return r


def skeleton_from_strict(k: str) -> str:
    """:func:`kana_to_skeleton` for a string that is already a :func:`~matching.kana.strict_key`."""
    return skeleton_from_pre(pre_skeleton(k))


def _skeleton_from_strict_reference(k: str) -> str:
    """The straightforward definition (romanise, then the general fold); used by the tests."""
    return _fold(k.translate(_KANA_TABLE)) if k else ""


def kana_to_skeleton(kana: str) -> str:
    """Skeleton of a kana reading, equal to :func:`romaji_skeleton` of its romanisations.

    サトウ → ``SATO`` (= SATO, SATOH, SATOU, Satō); キョウコ and legacy キヨウコ → ``KIYOKO``;
    ホンマ → ``HONMA`` (= HOMMA).  Limitation: legacy kana that writes ッ large (キツタ for キッタ)
    gives ``KITUTA`` where the romaji KITTA gives ``KITA``.
    """
    return skeleton_from_strict(strict_key(kana))


# --- alphabet names of foreign residents ----------------------------------------------------
_ASCII_EXTRA = str.maketrans(
    {
        "ß": "ss", "ẞ": "SS", "Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Ø": "O", "ø": "o",
        "Ł": "L", "ł": "l", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Þ": "TH", "þ": "th",
        "ı": "i", "Ħ": "H", "ħ": "h",
    }
)
_TOKEN_SPLIT = re.compile(r"[^A-Z0-9]+")


def alpha_tokens(s: str) -> list[str]:
    """Uppercase ASCII tokens of an alphabet name, in written order.

    Diacritics are folded (NGUYỄN → NGUYEN, Đặng → DANG, Müller → MULLER); separators are
    anything that is not a letter or digit (spaces, commas, hyphens, dots).  Non-latin text is
    dropped.
    """
    if not s:
        return []
    s = unicodedata.normalize("NFKD", s.translate(_ASCII_EXTRA))
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).upper()
    return [t for t in _TOKEN_SPLIT.split(s) if t]


def alpha_token_similarity(a: str | Sequence[str], b: str | Sequence[str]) -> float:
    """Order-free similarity (0–100) of two alphabet names (strings or token lists).

    rapidfuzz ``token_set_ratio``, so "NGUYEN VAN AN" = "AN NGUYEN VAN" = 100 and a dropped middle
    name still scores high.  One guard against false matches: when one side is a single token
    and the other has several, ``token_set_ratio`` would give 100 for any shared token (every
    NGUYEN matches "NGUYEN"), so ``token_sort_ratio`` of the whole names is used instead.
    """
    ta = alpha_tokens(a) if isinstance(a, str) else [t for x in a for t in alpha_tokens(x)]
    tb = alpha_tokens(b) if isinstance(b, str) else [t for x in b for t in alpha_tokens(x)]
    if not ta or not tb:
        return 0.0
    sa, sb = " ".join(ta), " ".join(tb)
    if (len(ta) == 1) != (len(tb) == 1):
        return float(fuzz.token_sort_ratio(sa, sb))
    return float(fuzz.token_set_ratio(sa, sb))
