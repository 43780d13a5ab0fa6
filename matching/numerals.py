"""Kanji numerals (四十五, 三丁目's 三, 一九七〇) as integers: one reading for dates and addresses."""

from __future__ import annotations

KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}


def kanji_number(run: str) -> int:
    """四十五 → 45, 十 → 10, 三十一 → 31, 百二 → 102, 千二百 → 1200; a run without 十百千 is read
    digit by digit (一九七〇 → 1970).  ``run`` holds only these characters (callers match them)."""
    if not any(c in _UNITS for c in run):
        return int("".join(str(KANJI_DIGITS[c]) for c in run))
    total, cur = 0, 0
    for c in run:
        if c in _UNITS:
            total += (cur or 1) * _UNITS[c]
            cur = 0
        else:
            cur = cur * 10 + KANJI_DIGITS[c]
    return total + cur
