"""Addresses: a canonical text form and the town (町字) key used as matching evidence.

People type addresses in every shape: with or without prefecture and city, kanji numerals
(三丁目), 番地/号 or hyphens, full-width digits, 大字/字 or not, 館の沖 or 館ノ沖.  Matching needs
only a robust *town key* — "same neighbourhood" is good supporting evidence and cheap to block on —
so :func:`town_key` keeps the 町字 name and its 丁目 (or 地割) number and drops everything else.

Limitations (by design, documented for the scorer):

* The municipality is recognised by shape, not from a list: a leading ``…郡…町/村``, ``…市``
  (四日市市, 廿日市市 and 野々市市 listed; ``市場`` is not a city boundary), ``…区`` (wards and
  Tokyo's special wards), or, when a prefecture was written, a leading ``…町/村``.  Without a prefecture, a town-level
  municipality written without its 郡 (``大槌町小鎚``) cannot be told from a 町字 (``高田町館の沖``)
  and is kept; :func:`town_keys_compatible` accepts such a prefix difference.
* An address with no 町字 name (岩手郡雫石町第3地割12番地) uses its municipality (雫石町3).
* The 丁目 number is taken from ``N丁目`` / ``第N地割``, or from a three-number block (``2-3-4``);
  a two-number block (``12-3``) is read as 番地-号 with no 丁目.  A rural 番地-枝番-孫番
  (``12-3-1``) is therefore misread as 丁目 12.
* 字 and 大字/小字 are removed anywhere in the town part; ヶ/ケ/ヵ/が/ガ fold to ケ and ノ/の/之 to ノ.
* Kanji numerals are converted only in block numbers (before 丁目/番地/番/号/地割; after 第,
  番地, 番地の, 番の, 号の, 丁目, 地割 or "digit-"), never in names (三田, 八戸, 四日市, 一番町 stay).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .text import clean_compact
from matching.numerals import kanji_number as _kanji_number

__all__ = ["PREFECTURES", "normalize_address", "town_key", "town_keys_compatible"]

PREFECTURES: tuple[str, ...] = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県",
    "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府",
    "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県",
    "鹿児島県", "沖縄県",
)
# Longest first so 神奈川県 is not cut at a shorter name; also accept the name without 県/府/都
# when followed by a municipality (宮城石巻市 is rare, so only the full names are stripped).
_PREF_RE = re.compile("^(?:" + "|".join(sorted(PREFECTURES, key=len, reverse=True)) + ")")

_HYPHENS = str.maketrans({c: "-" for c in "‐‑‒–—―−－﹣ｰ"})
_KNUM = "〇零一二三四五六七八九十百千"

_KNUM_SEARCH = re.compile(rf"[{_KNUM}]")
_KNUM_RUN = re.compile(rf"[{_KNUM}]+")
_BLOCK_AFTER = ("丁目", "番地", "号", "地割")
_BLOCK_BEFORE = ("第", "番地の", "番の", "号の", "番地", "丁目", "地割")
_HYPHEN_SEARCH = re.compile("[‐‑‒–—―−－﹣ｰ]")
_DASH_AFTER_DIGIT = re.compile(r"(?<=[0-9])ー(?=[0-9])")




def _block_number(m: re.Match[str]) -> str:
    """Convert a kanji numeral run only where it is a block number, not part of a name."""
    s, a, b = m.string, m.start(), m.end()
    after = s[b : b + 2]
    if after.startswith(_BLOCK_AFTER) or (after[:1] == "番" and after[1:2] not in ("町", "丁")):
        return str(_kanji_number(m.group(0)))
    before = s[max(0, a - 3) : a]
    if before.endswith(_BLOCK_BEFORE) or (len(before) >= 2 and before[-1] == "-" and before[-2].isdigit()):
        return str(_kanji_number(m.group(0)))
    return m.group(0)


def _stage1(s: str) -> str:
    """NFKC, no whitespace, one hyphen, kanji numerals → digits in block numbers."""
    s = clean_compact(s)
    if _HYPHEN_SEARCH.search(s) is not None:
        s = s.translate(_HYPHENS)
    if "ー" in s:
        s = _DASH_AFTER_DIGIT.sub("-", s)
    if _KNUM_SEARCH.search(s) is not None:
        s = _KNUM_RUN.sub(_block_number, s)
    return s


#: (a substring the pattern needs, pattern, replacement): the cheap `in` test skips most patterns,
#: which matters when a million registry addresses pass through here at import.
_BLOCK_SUBS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("地割", re.compile(r"第(?=[0-9]+地割)"), ""),
    ("地割", re.compile(r"(?<=[0-9])地割"), "-"),
    ("丁目", re.compile(r"(?<=[0-9])丁目"), "-"),
    ("番地", re.compile(r"(?<=[0-9])番地の?"), "-"),
    ("番", re.compile(r"(?<=[0-9])番(?!町|丁)の?"), "-"),
    ("号", re.compile(r"(?<=[0-9])号の?"), "-"),
    ("の", re.compile(r"(?<=[0-9])の(?=[0-9])"), "-"),
    ("--", re.compile(r"-{2,}"), "-"),
    ("-", re.compile(r"(?<=[0-9])-$"), ""),
    ("-", re.compile(r"(?<=[0-9])-(?=[^0-9])"), ""),
)


def normalize_address(s: str) -> str:
    """Canonical text of an address, for display-independent comparison.

    NFKC, whitespace removed, every dash as ``-``, kanji numerals in block numbers as digits, and
    the block forms 1丁目2番3号 / 1丁目2番地3 / 1-2-3 / 2番地の3 / 第3地割12番地 written
    ``1-2-3`` / ``2-3`` / ``3-12``.  Names are left alone.  Idempotent.
    """
    if not s:
        return ""
    return _block_forms(_stage1(s))


def _block_forms(t: str) -> str:
    """The block-number rewriting of :func:`normalize_address` on stage-1 text."""
    for needle, pat, rep in _BLOCK_SUBS:
        if needle in t:
            t = pat.sub(rep, t)
    return t


# --- town key -----------------------------------------------------------------------------------
_PREF_SET = frozenset(PREFECTURES)
_GUN_TOWN = re.compile(r"[^0-9-]{1,8}?郡[^0-9-]{1,8}?[町村]")
# Cities whose name itself contains 市 are listed so the shortest-match rule does not stop early.
_CITY = re.compile(r"(?:(?:四日市|廿日市|野々市)市|[^0-9-]{1,10}?市(?!場|街|内|役所))")
_WARD = re.compile(r"[^0-9-]{1,6}?区")
_TOWN_OR_VILLAGE = re.compile(r"[^0-9-]{1,6}?[町村](?=.)")
_AZA = re.compile(r"大字|小字|字")
_TOWN_FOLD = str.maketrans({"ヶ": "ケ", "ヵ": "ケ", "が": "ケ", "ガ": "ケ", "の": "ノ", "之": "ノ"})
_TOWN_FOLD_SEARCH = re.compile("[ヶヵがガの之]")
_FIRST_NUMBER = re.compile(r"第?([0-9]+)")
_TWO_MORE_NUMBERS = re.compile(r"-[0-9]+-[0-9]+")


def _strip_municipality(t: str) -> tuple[str, str]:
    """(rest, last municipality component stripped) — the latter names the town when an
    address has no 町字 of its own (岩手郡雫石町第3地割 → 雫石町)."""
    had_pref = False
    last = ""
    if t[:3] in _PREF_SET:
        t, had_pref = t[3:], True
    elif t[:4] in _PREF_SET:
        t, had_pref = t[4:], True
    if "郡" in t and (m := _GUN_TOWN.match(t)):
        part = m.group(0)
        return t[m.end():], part[part.index("郡") + 1 :]
    stripped = False
    if "市" in t and (m := _CITY.match(t)):
        t, stripped, last = t[m.end():], True, m.group(0)
    if "区" in t and (m := _WARD.match(t)):
        # A ward follows a designated city (仙台市青葉区) or stands alone in Tokyo (世田谷区).
        if stripped or had_pref or len(m.group(0)) <= 4:
            t, stripped, last = t[m.end():], True, m.group(0)
    if not stripped and had_pref and (m := _TOWN_OR_VILLAGE.match(t)):
        t, last = t[m.end():], m.group(0)
    return t, last


@lru_cache(maxsize=65536)
def town_key(s: str) -> str | None:
    """The 町字 of an address plus its 丁目 number: "中央2", "高田町館ノ沖"; None if none found.

    Prefecture and municipality are stripped when present (see module limitations), 大字/字
    removed, ヶ/ノ spellings folded.  "岩手県陸前高田市高田町字館の沖12-3" and "高田町館の沖12番地3"
    give the same key; "宮城県石巻市中央二丁目3-4" gives "中央2".  Cached: registry rows of one
    household share an address.
    """
    if not s:
        return None
    return _town_key_of_stage1(_stage1(s))


def _town_key_of_stage1(t: str) -> str | None:
    t, municipality = _strip_municipality(t)
    if not t:
        return None
    if "字" in t:
        t = _AZA.sub("", t)
    if _TOWN_FOLD_SEARCH.search(t) is not None:
        t = t.translate(_TOWN_FOLD)
    m = _FIRST_NUMBER.search(t)
    # 条 and 線 numbers belong to the town name (札幌市中央区北1条西, 東2線).
    while m is not None and t.startswith(("条", "線"), m.end()):
        m = _FIRST_NUMBER.search(t, m.end() + 1)
    if m is None:
        name, num = t, ""
    else:
        name, num = t[: m.start()], ""
        end = m.end()
        if t.startswith(("丁目", "地割"), end) or _TWO_MORE_NUMBERS.match(t, end):
            num = str(int(m.group(1)))
    name = name.rstrip("-")
    if not name:
        if not municipality or not num:
            return None
        name = municipality
    return name + num


def town_keys_compatible(a: str | None, b: str | None) -> bool:
    """True when two town keys can denote the same place.

    Equal keys, or one is the other with a municipality-like prefix left on it (大槌町小鎚 /
    小鎚), or one lacks the 丁目 number the other has (中央 / 中央2).  Empty keys are never
    compatible: no address is no evidence.
    """
    if not a or not b:
        return False
    if a == b:
        return True
    sa, sb = a.rstrip("0123456789"), b.rstrip("0123456789")
    na, nb = a[len(sa):], b[len(sb):]
    if na and nb and na != nb:
        return False
    short, long_ = (sa, sb) if len(sa) <= len(sb) else (sb, sa)
    return len(short) >= 2 and long_.endswith(short) and long_[: -len(short)][-1:] in "町村市区郡"


_NUMBER_RUN = re.compile(r"\d+(?:-\d+)*")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@lru_cache(maxsize=65536)
def house_key(s: str) -> str | None:
    """The town key plus the lot and house numbers (番地・号): "高田町館ノ沖|12-3".

    Two people with the same house key live at the same address, which is much stronger evidence
    than sharing a 町字. None when the address has no number after its town (a partial address).
    The 丁目 number, already part of the town key, is not repeated in the house part.
    """
    return address_keys(s)[1]


@lru_cache(maxsize=262144)
def address_keys(s: str) -> tuple[str | None, str | None]:
    """(town key, house key) of one address, normalising it once.

    The registry import asks for both keys of every row; households share an address, so the
    cache answers most rows, and a miss costs one stage-1 pass instead of three.
    """
    if not s:
        return None, None
    stage1 = _stage1(s)
    town = _town_key_of_stage1(stage1)
    if not town:
        return None, None
    runs = _NUMBER_RUN.findall(_block_forms(stage1))
    if not runs:
        return town, None
    house = runs[-1]
    chome = _TRAILING_NUMBER.search(town)
    if chome is not None:
        if house == chome.group(1) and len(runs) == 1:
            return town, None  # only the 丁目 was given
        if house.startswith(chome.group(1) + "-"):
            house = house[len(chome.group(1)) + 1:]
    return town, f"{town}|{house}"
