"""Birth dates as people type them: western, 和暦 (era), partial, ages, or "unknown".

:func:`parse_date` never guesses silently: the result says what was read (a full day, a year,
an age), whether an era was converted or had to be inferred, and which other readings were
plausible.  Impossible dates raise :class:`DateError` with an English message naming the
problem, so the roster import can show it next to the row.

Era table (ARCHITECTURE.md §6).  明治 starts on 1868-10-23 (明治改元, Gregorian); the era was declared
retroactive to the first day of 慶応4年, and Japan used the lunisolar calendar until 明治5年, so a
明治元年 date before 10-23 converts with ``era_out_of_range`` set rather than being rejected.
No living evacuee is likely to have a 明治 birth date; the choice only matters for records.

Why hand-written rather than a library: japanera converts era ⇄ western dates for well-formed
input, but has no notion of a missing era (45.3.1), of 元年 typed as 1 or 元, of kanji numerals
with 十 (四十五), of out-of-range era years we must still convert (平成1年1月7日), or of ages; kanjize
converts large kanji numbers (万/億) but not digit-by-digit years (一九七〇) or 元.  The grammar
needed here is small and every branch is tested, so neither is a dependency.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from .text import clean
from matching.numerals import kanji_number as _kanji_number

__all__ = [
    "DateError",
    "ParsedDate",
    "Era",
    "ERAS",
    "parse_date",
    "date_variants",
    "format_iso",
    "era_of",
]

Kind = Literal["day", "year", "age", "unknown", "empty"]


class DateError(ValueError):
    """A date that cannot exist (2月30日, month 13) or text that is not a date at all.

    `ja` names the problem in the words a desk volunteer reads (「13月はありません」), because
    "cannot read the date" alone does not tell them which part to fix."""

    def __init__(self, message: str, ja: str = "") -> None:
        super().__init__(message)
        self.ja = ja or "日付として読み取れません"


@dataclass(frozen=True, slots=True)
class Era:
    """One Japanese era: code letter, name, first day and last day (None for the current era)."""

    code: str
    name: str
    start: date
    end: date | None

    def to_year(self, era_year: int) -> int:
        """Western year of ``era_year`` of this era (元年 = 1)."""
        return self.start.year + era_year - 1

    def contains(self, d: date) -> bool:
        return self.start <= d and (self.end is None or d <= self.end)


ERAS: tuple[Era, ...] = (
    Era("M", "明治", date(1868, 10, 23), date(1912, 7, 29)),
    Era("T", "大正", date(1912, 7, 30), date(1926, 12, 24)),
    Era("S", "昭和", date(1926, 12, 25), date(1989, 1, 7)),
    Era("H", "平成", date(1989, 1, 8), date(2019, 4, 30)),
    Era("R", "令和", date(2019, 5, 1), None),
)
_ERA_BY_CODE = {e.code: e for e in ERAS}
#: Order in which an era-less date (45.3.1) is tried: most evacuees were born in 昭和 or 平成.
_ERA_PREFERENCE = ("S", "H", "R", "T", "M")
_MAX_AGE = 110

_ERA_NAMES = {
    "明治": "M", "大正": "T", "昭和": "S", "平成": "H", "令和": "R",
    "明": "M", "大": "T", "昭": "S", "平": "H", "令": "R",
    "M": "M", "T": "T", "S": "S", "H": "H", "R": "R",
}
_ERA_RE = "明治|大正|昭和|平成|令和|[明大昭平令MTSHRmtshr]"

_MONTHS = (
    "", "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)


@dataclass(frozen=True, slots=True)
class ParsedDate:
    """What :func:`parse_date` read.

    ``kind`` is ``day`` (``value`` set), ``year`` (only the year is known: ``year_min ==
    year_max``), ``age`` (``year_min``..``year_max`` are the possible birth years), ``unknown``
    (typed as 不詳/不明/?) or ``empty``.  ``era_converted`` is set when a 和暦 date was converted,
    ``era_missing`` when the era was inferred (45.3.1), ``era_out_of_range`` when the era date
    lies outside its era (平成1年1月7日, 昭和70年).  ``alternatives`` lists the other plausible
    readings of an era-less date, most plausible first.
    """

    raw: str
    kind: Kind
    value: date | None = None
    year_min: int | None = None
    year_max: int | None = None
    era_converted: bool = False
    era_missing: bool = False
    era_out_of_range: bool = False
    era: str = ""
    alternatives: tuple[date, ...] = field(default=())


# --- kanji numerals ---------------------------------------------------------------------------
_KANJI_NUM_RUN = re.compile(r"[〇零一二三四五六七八九十百]+")




def _replace_kanji_numbers(s: str) -> str:
    s = s.replace("元年", "1年")
    return _KANJI_NUM_RUN.sub(lambda m: str(_kanji_number(m.group(0))), s)


# --- patterns (applied to NFKC text with spaces removed and kanji numerals converted) --------
_SEP = r"[-/.,、・]"
_P_ISO_TIME = re.compile(r"(\d{4}-\d{1,2}-\d{1,2})(?:[T ]?\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_P_YMD8 = re.compile(r"(\d{4})(\d{2})(\d{2})")
_P_YMD = re.compile(rf"(\d{{4}})(?:{_SEP}|年)(\d{{1,2}})(?:{_SEP}|月)(\d{{1,2}})日?")
_P_YM = re.compile(rf"(\d{{4}})(?:{_SEP}|年)(\d{{1,2}})月?")
_P_Y = re.compile(r"(\d{4})年?")
_P_ERA_YMD = re.compile(rf"({_ERA_RE})\.?(\d{{1,2}})(?:{_SEP}|年)(\d{{1,2}})(?:{_SEP}|月)(\d{{1,2}})日?")
_P_ERA_YM = re.compile(rf"({_ERA_RE})\.?(\d{{1,2}})(?:{_SEP}|年)(\d{{1,2}})月?")
_P_ERA_Y = re.compile(rf"({_ERA_RE})\.?(\d{{1,2}})年?")
_P_ERA_CODE7 = re.compile(r"([1-5])(\d{2})(\d{2})(\d{2})")
_P_NOERA_YMD = re.compile(rf"(\d{{1,2}})(?:{_SEP}|年)(\d{{1,2}})(?:{_SEP}|月)(\d{{1,2}})日?")
_P_NOERA_Y = re.compile(r"(\d{1,2})年")
_P_AGE = re.compile(r"(?:満)?(\d{1,3})(?:歳|才|さい)?")

_UNKNOWN_WORDS = ("不詳", "不明", "不祥", "わからない", "分からない", "unknown", "n/a", "不知")
_SUFFIXES = ("生まれ", "生", "頃", "ごろ", "くらい", "ぐらい", "位", "前後", "程度")
_PREFIXES = ("約", "およそ", "推定", "生年月日", "誕生日", ":")
_ERA_CODE7 = {"1": "M", "2": "T", "3": "S", "4": "H", "5": "R"}


def _check_ymd(y: int, m: int, d: int) -> date:
    if not 1 <= m <= 12:
        raise DateError(f"month {m} is not valid (year {y}, day {d})", f"{m}月はありません")
    if not 1800 <= y <= 2200:
        raise DateError(f"year {y} is out of range", f"{y}年は範囲外です")
    last = calendar.monthrange(y, m)[1]
    if not 1 <= d <= last:
        raise DateError(f"day {d} is not valid for {_MONTHS[m]} {y}", f"{y}年{m}月{d}日はありません（{m}月は{last}日まで）")
    return date(y, m, d)


def era_of(d: date) -> Era | None:
    """The era a (western) date falls in, or None before 明治."""
    for e in reversed(ERAS):
        if d >= e.start:
            return e
    return None


def _era_date(code: str, ey: int, m: int, d: int) -> tuple[date, bool]:
    era = _ERA_BY_CODE[code]
    if ey < 1:
        raise DateError(f"era year {ey} does not exist ({era.name}元年 is year 1)", f"{era.name}{ey}年はありません")
    value = _check_ymd(era.to_year(ey), m, d)
    return value, not era.contains(value)


def _era_year_out_of_range(code: str, ey: int) -> bool:
    era = _ERA_BY_CODE[code]
    y = era.to_year(ey)
    return y < era.start.year or (era.end is not None and y > era.end.year)


def _plausible(d: date, today: date) -> bool:
    return d <= today and today.year - d.year <= _MAX_AGE


def _strip_affixes(s: str) -> str:
    changed = True
    while changed and s:
        changed = False
        for suf in _SUFFIXES:
            if s.endswith(suf) and len(s) > len(suf):
                s, changed = s[: -len(suf)], True
        for pre in _PREFIXES:
            if s.startswith(pre) and len(s) > len(pre):
                s, changed = s[len(pre):], True
    return s


def parse_date(s: str | None, *, today: date | None = None) -> ParsedDate:
    """Read a birth date typed by a person or exported by a registry system.

    Accepted forms: ``19700301``, ``1970-03-01`` (optionally with a time), ``1970/3/1``,
    ``1970.3.1``, ``1970年3月1日``; era forms ``S45.3.1``, ``s45/3/1``, ``S45年3月1日``, ``昭和45年3月1日``,
    ``昭45.3.1``, ``昭和四十五年三月一日``, ``平成元年…``, ``㍼45.3.1``; the legacy 7-digit era code
    ``3450301`` (1=明治 … 5=令和 + YYMMDD); era-less ``45.3.1``/``45年3月1日``; year only
    (``1970``, ``1970年``, ``S45``, ``昭和45年``; a year and month also give kind ``year``);
    ages ``78歳``/``78才``/``満78歳``/``78``; unknown markers ``不詳``, ``不明``, ``?``.  Full-width
    digits and kanji numerals are accepted everywhere.

    Raises :class:`DateError` for impossible dates and for text that is not a date.
    """
    raw = "" if s is None else s
    today = today or date.today()
    text = clean(raw)
    text = "".join(text.split())
    if not text:
        return ParsedDate(raw, "empty")
    low = text.lower()
    if any(w in low for w in _UNKNOWN_WORDS) or set(text) <= set("?-*x×X"):
        return ParsedDate(raw, "unknown")
    text = _strip_affixes(text)
    text = _replace_kanji_numbers(text)

    if m := _P_ISO_TIME.fullmatch(text):
        text = m.group(1)

    # --- western ------------------------------------------------------------------------
    for pat in (_P_YMD8, _P_YMD):
        if m := pat.fullmatch(text):
            y, mo, d = (int(g) for g in m.groups())
            return ParsedDate(raw, "day", _check_ymd(y, mo, d), y, y)
    if m := _P_YM.fullmatch(text):
        y, mo = int(m.group(1)), int(m.group(2))
        _check_ymd(y, mo, 1)
        return ParsedDate(raw, "year", None, y, y)
    if m := _P_Y.fullmatch(text):
        y = int(m.group(1))
        if not 1800 <= y <= 2200:
            raise DateError(f"year {y} is out of range")
        return ParsedDate(raw, "year", None, y, y)

    # --- era ------------------------------------------------------------------------------
    if m := _P_ERA_YMD.fullmatch(text):
        code = _ERA_NAMES[m.group(1).upper() if m.group(1).isascii() else m.group(1)]
        ey, mo, d = int(m.group(2)), int(m.group(3)), int(m.group(4))
        value, out = _era_date(code, ey, mo, d)
        return ParsedDate(raw, "day", value, value.year, value.year, era_converted=True,
                          era_out_of_range=out, era=code)
    if m := _P_ERA_CODE7.fullmatch(text):
        code = _ERA_CODE7[m.group(1)]
        ey, mo, d = int(m.group(2)), int(m.group(3)), int(m.group(4))
        value, out = _era_date(code, ey, mo, d)
        return ParsedDate(raw, "day", value, value.year, value.year, era_converted=True,
                          era_out_of_range=out, era=code)
    for pat in (_P_ERA_YM, _P_ERA_Y):
        if m := pat.fullmatch(text):
            code = _ERA_NAMES[m.group(1).upper() if m.group(1).isascii() else m.group(1)]
            ey = int(m.group(2))
            if ey < 1:
                raise DateError(f"era year {ey} does not exist ({_ERA_BY_CODE[code].name}元年 is year 1)")
            if pat is _P_ERA_YM:
                _check_ymd(_ERA_BY_CODE[code].to_year(ey), int(m.group(3)), 1)
            y = _ERA_BY_CODE[code].to_year(ey)
            return ParsedDate(raw, "year", None, y, y, era_converted=True,
                              era_out_of_range=_era_year_out_of_range(code, ey), era=code)

    # --- era missing ----------------------------------------------------------------------
    if m := _P_NOERA_YMD.fullmatch(text):
        ey, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return _infer_era(raw, ey, mo, d, today)
    if m := _P_NOERA_Y.fullmatch(text):
        return _infer_era_year(raw, int(m.group(1)), today)

    # --- age ------------------------------------------------------------------------------
    if m := _P_AGE.fullmatch(text):
        age = int(m.group(1))
        if age > 130:
            raise DateError(f"age {age} is not plausible", f"{age}歳は年齢として大きすぎます")
        return ParsedDate(raw, "age", None, today.year - age - 1, today.year - age)

    raise DateError(f"could not read {raw.strip()!r} as a date", "日付として読み取れません（例 S45.3.1、昭和45年3月1日、78歳）")


def _infer_era(raw: str, ey: int, mo: int, d: int, today: date) -> ParsedDate:
    """An era-less day (45.3.1): the first plausible era in preference order wins."""
    readings: list[tuple[date, str]] = []
    first_error: DateError | None = None
    if ey >= 1:
        for code in _ERA_PREFERENCE:
            try:
                value, out = _era_date(code, ey, mo, d)
            except DateError as exc:
                first_error = first_error or exc
                continue
            if not out and _plausible(value, today):
                readings.append((value, code))
    if readings:
        (value, code), rest = readings[0], readings[1:]
        return ParsedDate(raw, "day", value, value.year, value.year, era_converted=True,
                          era_missing=True, era=code, alternatives=tuple(v for v, _ in rest))
    # No era fits: a two-digit western year (70.3.1 = 1970-03-01), latest plausible first.
    western: list[date] = []
    for century in (2000, 1900):
        try:
            value = _check_ymd(century + ey, mo, d)
        except DateError as exc:
            first_error = first_error or exc
            continue
        if _plausible(value, today):
            western.append(value)
    if western:
        return ParsedDate(raw, "day", western[0], western[0].year, western[0].year,
                          era_missing=True, alternatives=tuple(western[1:]))
    if first_error is not None:
        raise first_error
    raise DateError(f"{raw.strip()!r}: year {ey} fits no era and no plausible century")


def _infer_era_year(raw: str, ey: int, today: date) -> ParsedDate:
    """An era-less year (45年)."""
    if ey < 1:
        raise DateError(f"era year {ey} does not exist")
    for code in _ERA_PREFERENCE:
        if _era_year_out_of_range(code, ey):
            continue
        y = _ERA_BY_CODE[code].to_year(ey)
        if y <= today.year and today.year - y <= _MAX_AGE:
            return ParsedDate(raw, "year", None, y, y, era_converted=True, era_missing=True, era=code)
    raise DateError(f"{raw.strip()!r}: year {ey} fits no era")


def _replace_year(d: date, year: int) -> date | None:
    try:
        return d.replace(year=year)
    except ValueError:  # 29 February in a common year
        return None


def date_variants(d: date) -> list[tuple[date, str]]:
    """Dates a tired typist may have entered instead of ``d``, each with a label.

    ``day±1`` (the day before and after), ``dm-swap`` (day and month exchanged, when that is a
    different valid date) and ``year±1`` (same month and day a year earlier or later, which is
    also the adjacent era year).  ``d`` itself is not included.
    """
    out: list[tuple[date, str]] = []
    for delta in (-1, 1):
        try:
            out.append((d + timedelta(days=delta), "day±1"))
        except OverflowError:
            pass
    if d.day <= 12 and d.day != d.month:
        try:
            out.append((date(d.year, d.day, d.month), "dm-swap"))
        except ValueError:
            pass
    for delta in (-1, 1):
        if date.min.year <= d.year + delta <= date.max.year:
            other = _replace_year(d, d.year + delta)
            if other is not None:
                out.append((other, "year±1"))
    return out


def format_iso(pd: ParsedDate) -> str:
    """ISO 8601 text: ``YYYY-MM-DD`` for a day, ``YYYY`` for a year, ``""`` otherwise."""
    if pd.kind == "day" and pd.value is not None:
        return pd.value.isoformat()
    if pd.kind == "year" and pd.year_min is not None:
        return f"{pd.year_min:04d}"
    return ""
