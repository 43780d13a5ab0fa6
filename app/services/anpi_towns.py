"""町字 as HQ reads them: in the registry's own spelling (緑が丘四丁目, not the matching key 緑ケ丘4),
in natural order (大槌浜町1, 2, … 10 — numbers as numbers, names in 五十音 order by reading), and
the name search of the 安否確認 list.

Why separate from `anpi_list`: the list's key stays the engine's town key (filters, chart links
and the hub's counts all compare keys); only what a person reads and the order change, for the
shelter's /hq and the hub's list alike (both call `anpi_list.build_rows`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from matching.address import PREFECTURES

NO_TOWN = "（町字なし）"
_NUM = re.compile(r"(\d+)")
_MUNICIPALITY = re.compile(r"^(?:[^0-9０-９]{1,8}?郡[^0-9０-９]{1,8}?[町村]|(?:四日市|廿日市|野々市)市|"
                           r"[^0-9０-９]{1,10}?市(?!場|街|内|役所))(?:[^0-9０-９]{1,6}?区)?")
_BLOCK_END = re.compile(r"^[^0-9０-９]*?[0-9０-９〇一二三四五六七八九十]+(?:丁目|地割)")
_TOWN_END = re.compile(r"[0-9０-９]|[〇一二三四五六七八九十百千]+(?:番|号|の[0-9０-９〇一二三四五六七八九])")
_THREE_NUMBERS = re.compile(r"([0-9０-９]+)[-－ー‐][0-9０-９]+[-－ー‐][0-9０-９]+")


def town_spelling(address: str) -> str:
    """The 町字 part of an address as written: 「岩手県大槌町緑が丘四丁目3-2」 → 「緑が丘四丁目」."""
    t = "".join((address or "").split())
    for pref in PREFECTURES:
        if t.startswith(pref):
            t = t[len(pref):]
            m = re.match(r"[^0-9０-９]{1,6}?[町村](?=.)", t) if not _MUNICIPALITY.match(t) else None
            if m and "郡" not in t[: m.end()]:
                t = t[m.end():]
            break
    m = _MUNICIPALITY.match(t)
    if m and m.end() < len(t):
        t = t[m.end():]
    block = _BLOCK_END.search(t)
    if block is not None:
        return t[: block.end()]
    end = _TOWN_END.search(t)
    if end is None:
        return t
    name = t[: end.start()].rstrip("-－ー第")
    m = _THREE_NUMBERS.match(t, end.start())
    return name + m.group(1) if m else name  # 浜町1-2-3: the first number is the 丁目


def town_labels(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """town key → the spelling most residents of that key have in the registry (ties: the first)."""
    counts: dict[str, Counter[str]] = {}
    for key, address in pairs:
        if key:
            counts.setdefault(key, Counter())[town_spelling(address) or key] += 1
    return {k: c.most_common(1)[0][0] for k, c in counts.items()}


@lru_cache(maxsize=1)
def _kakasi():  # type: ignore[no-untyped-def]
    from matching.readings import ReadingModel

    return ReadingModel(use_pykakasi=True)


@lru_cache(maxsize=65536)
def _reading(name: str) -> str:
    """Katakana reading of a town name (pykakasi), so 町字 sort in 五十音 order; the name itself when
    no reading is known (then it sorts by code point among the unknowns)."""
    if not name:
        return ""
    try:
        from matching.kana import to_katakana

        return to_katakana(_kakasi().dictionary_reading(name)) or name
    except Exception:  # noqa: BLE001 - order is a convenience: a name without a reading still sorts
        return name


def name_reading(name: str) -> str:
    """Katakana dictionary reading of a name (pykakasi; the name itself when none is known): the
    掲示用名簿 sorts people in 五十音 order with it when no reading was typed at intake."""
    return _reading(name)


@lru_cache(maxsize=65536)
def town_sort_key(town: str) -> tuple:
    """Natural order of town keys: the name by reading, numbers compared as numbers; no 町字 last."""
    if not town or town == NO_TOWN:
        return (1,)
    parts = _NUM.split(unicodedata.normalize("NFKC", town))
    key: list[tuple[int, object, str]] = []
    for i, p in enumerate(parts):
        if not p:
            continue
        key.append((1, int(p), p) if i % 2 else (0, _reading(p), p))
    return (0, tuple(key))


def sorted_towns(towns: Iterable[str]) -> list[str]:
    return sorted(set(towns), key=town_sort_key)
