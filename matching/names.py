"""Splitting a typed full name into (family, given) alternatives, and telling its script.

The roster's 氏名 column holds whatever the volunteer typed: 山田太郎, 山田　太郎, やまだ たろう,
Taro YAMADA, YAMADA Taro, YAMADA, Taro.  The registry keeps family and given names apart, so the
query side produces *alternatives*, best first, and the scorer tries each.  Nothing here guesses
readings (no pykakasi): see :mod:`matching.readings`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import Literal

from .kanji import is_kanji_char
from .text import clean

__all__ = ["Script", "script_of", "split_full_name", "split_with_surnames", "tokens"]

Script = Literal["kanji", "kana", "latin", "mixed", "empty"]

_SEPARATORS = re.compile(r"[\s・･,、，/／]+")


def _char_script(ch: str) -> str | None:
    cp = ord(ch)
    if 0x3041 <= cp <= 0x309F or 0x30A0 <= cp <= 0x30FF or 0xFF66 <= cp <= 0xFF9F or ch == "ー":
        if ch in "・゠":
            return None
        return "kana"
    if is_kanji_char(ch):
        return "kanji"
    if ch.isalpha():
        if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
            return "latin"
        return "other"
    return None


def script_of(s: str) -> Script:
    """Which script a name is written in: "kanji", "kana", "latin", "mixed" or "empty".

    Spaces, punctuation and digits are ignored.  Gaiji and the wildcard count as kanji; a name
    mixing kanji and kana (佐藤さくら) or using any other script is "mixed".
    """
    seen: set[str] = set()
    for ch in clean(s) if s else "":
        sc = _char_script(ch)
        if sc is not None:
            seen.add(sc)
    if not seen:
        return "empty"
    if len(seen) == 1:
        only = next(iter(seen))
        return only if only != "other" else "mixed"  # type: ignore[return-value]
    return "mixed"


def tokens(s: str) -> list[str]:
    """Name tokens split at half/full-width spaces, middle dots, commas and slashes."""
    if not s:
        return []
    return [t for t in _SEPARATORS.split(clean(s)) if t]


def split_full_name(s: str) -> list[tuple[str, str]]:
    """(family, given) alternatives for a typed full name, most likely first.

    * No separator: ``[(s, "")]`` — use :func:`split_with_surnames` to split 山田太郎.
    * Kanji/kana with a space: Japanese order, ``[("山田", "太郎")]``.
    * Latin: both orders.  A comma means "FAMILY, Given" and gives only that order; otherwise an
      all-capital token is taken as the family name first (passport convention: Taro YAMADA and
      YAMADA Taro both put YAMADA first), else the written order comes first.
    * More than two tokens: the first (and for latin the last) token as family, the rest as the
      given name (joined by one space for latin, without a space for kanji/kana).
    """
    text = clean(s).strip() if s else ""
    if not text:
        return []
    parts = tokens(text)
    if len(parts) <= 1:
        return [("".join(parts) or text, "")]
    if script_of(text) != "latin":
        return [(parts[0], "".join(parts[1:]))]
    if re.search(r"[,、，]", text):
        return [(parts[0], " ".join(parts[1:]))]
    first = (parts[0], " ".join(parts[1:]))
    last = (parts[-1], " ".join(parts[:-1]))
    upper_first = parts[0].isupper() and not parts[-1].isupper()
    upper_last = parts[-1].isupper() and not parts[0].isupper()
    if upper_last and not upper_first:
        return [last, first]
    return [first, last]


def split_with_surnames(s: str, surnames: Collection[str]) -> list[tuple[str, str]]:
    """Every split of an unspaced name whose family part is a known surname, longest first.

    ``surnames`` must be in the same normal form as ``s`` (e.g. both :func:`~matching.kanji.
    variant_key` or both :func:`~matching.kana.strict_key`; :func:`matching.person.surname_keys`
    builds them from registry rows).  The whole string as one token, ``(s, "")``, is always last,
    for people registered under a single name and for surnames the registry does not know.
    """
    out: list[tuple[str, str]] = []
    if not s:
        return out
    for i in range(len(s) - 1, 0, -1):
        if s[:i] in surnames:
            out.append((s[:i], s[i:]))
    out.append((s, ""))
    return out
