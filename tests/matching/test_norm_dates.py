"""matching.dates: every accepted birth-date form, era edge cases, errors, typo variants."""

from __future__ import annotations

from datetime import date

import pytest

from matching.dates import DateError, ParsedDate, date_variants, format_iso, parse_date

TODAY = date(2025, 6, 1)
D = date(1970, 3, 1)


@pytest.mark.parametrize(
    "raw",
    [
        "19700301", "1970-03-01", "1970-3-1", "1970-03-01 00:00:00", "1970-03-01T00:00:00",
        "1970/3/1", "1970/03/01", "1970.3.1", "1970年3月1日", "1970年03月01日", "１９７０／０３／０１",
        "１９７０年３月１日", "一九七〇年三月一日", " 1970/3/1 ",
    ],
)
def test_western_forms(raw: str) -> None:
    pd = parse_date(raw, today=TODAY)
    assert (pd.kind, pd.value, pd.year_min, pd.year_max) == ("day", D, 1970, 1970)
    assert not pd.era_converted and not pd.era_missing
    assert pd.raw == raw


@pytest.mark.parametrize(
    "raw",
    [
        "S45.3.1", "s45/3/1", "S45年3月1日", "S45-3-1", "S.45.3.1", "Ｓ４５．３．１", "昭和45年3月1日",
        "昭和４５年３月１日", "昭45.3.1", "昭和45.3.1", "昭和四十五年三月一日", "昭和 45年 3月 1日",
        "㍼45.3.1", "3450301", "S45.03.01",
    ],
)
def test_era_forms(raw: str) -> None:
    pd = parse_date(raw, today=TODAY)
    assert (pd.kind, pd.value, pd.era) == ("day", D, "S")
    assert pd.era_converted and not pd.era_missing and not pd.era_out_of_range


@pytest.mark.parametrize(
    "raw,expected,era",
    [
        ("M45.7.29", date(1912, 7, 29), "M"),
        ("明治45年7月29日", date(1912, 7, 29), "M"),
        ("T1.7.30", date(1912, 7, 30), "T"),
        ("大正元年7月30日", date(1912, 7, 30), "T"),
        ("大15.12.24", date(1926, 12, 24), "T"),
        ("昭和元年12月25日", date(1926, 12, 25), "S"),
        ("S64.1.7", date(1989, 1, 7), "S"),
        ("平成元年1月8日", date(1989, 1, 8), "H"),
        ("H1.1.8", date(1989, 1, 8), "H"),
        ("平31.4.30", date(2019, 4, 30), "H"),
        ("令和元年5月1日", date(2019, 5, 1), "R"),
        ("R1.5.1", date(2019, 5, 1), "R"),
        ("令2.2.29", date(2020, 2, 29), "R"),
        ("h1/1/8", date(1989, 1, 8), "H"),
        ("平成一年一月八日", date(1989, 1, 8), "H"),
        ("平成三十一年四月三十日", date(2019, 4, 30), "H"),
    ],
)
def test_era_boundaries_and_gannen(raw: str, expected: date, era: str) -> None:
    pd = parse_date(raw, today=TODAY)
    assert (pd.value, pd.era, pd.era_out_of_range) == (expected, era, False)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("平成1年1月7日", date(1989, 1, 7)),  # before 平成 began
        ("H1.1.1", date(1989, 1, 1)),
        ("昭和64年1月8日", date(1989, 1, 8)),  # after 昭和 ended
        ("S70.1.1", date(1995, 1, 1)),
        ("T15.12.25", date(1926, 12, 25)),
        ("R1.4.30", date(2019, 4, 30)),
        ("M1.1.1", date(1868, 1, 1)),  # 明治元年 before the 10-23 改元 (see module docstring)
    ],
)
def test_era_out_of_range_still_converts(raw: str, expected: date) -> None:
    pd = parse_date(raw, today=TODAY)
    assert pd.value == expected and pd.era_converted and pd.era_out_of_range


def test_era_missing_prefers_showa_and_lists_alternatives() -> None:
    pd = parse_date("45.3.1", today=TODAY)
    assert (pd.value, pd.era, pd.era_missing, pd.era_converted) == (D, "S", True, True)
    assert pd.alternatives == ()  # 平成45 and 令和45 are in the future, 大正45 does not exist
    pd = parse_date("3.4.5", today=TODAY)
    assert pd.value == date(1928, 4, 5) and pd.era == "S"
    assert pd.alternatives == (date(1991, 4, 5), date(2021, 4, 5))  # H3, R3; T3 is age 111
    pd = parse_date("45年3月1日", today=TODAY)
    assert pd.value == D and pd.era_missing


def test_era_missing_uses_heisei_when_showa_does_not_fit() -> None:
    pd = parse_date("2.2.29", today=TODAY)  # S2 = 1927 is no leap year; H2 = 1990 neither; R2 = 2020
    assert pd.value == date(2020, 2, 29) and pd.era == "R"
    pd = parse_date("64.1.8", today=TODAY)  # S64.1.8 is after 昭和 ended, H64/R64 are future
    assert pd.value == date(1964, 1, 8) and not pd.era_converted and pd.era_missing


def test_two_digit_western_year_when_no_era_fits() -> None:
    pd = parse_date("70.3.1", today=TODAY)
    assert pd.value == D and pd.era_missing and not pd.era_converted
    pd = parse_date("99.12.31", today=TODAY)
    assert pd.value == date(1999, 12, 31)


@pytest.mark.parametrize(
    "raw,ymin,ymax,era",
    [
        ("1970年", 1970, 1970, ""),
        ("1970", 1970, 1970, ""),
        ("1970年3月", 1970, 1970, ""),
        ("S45", 1970, 1970, "S"),
        ("昭和45年", 1970, 1970, "S"),
        ("昭和四十五年", 1970, 1970, "S"),
        ("S45年", 1970, 1970, "S"),
        ("昭和45年生まれ", 1970, 1970, "S"),
        ("平成元年", 1989, 1989, "H"),
        ("45年", 1970, 1970, "S"),
    ],
)
def test_year_only(raw: str, ymin: int, ymax: int, era: str) -> None:
    pd = parse_date(raw, today=TODAY)
    assert (pd.kind, pd.value, pd.year_min, pd.year_max, pd.era) == ("year", None, ymin, ymax, era)


@pytest.mark.parametrize("raw", ["78歳", "78", "満78歳", "78才", "７８歳", "七十八歳", "78歳くらい", "約78歳"])
def test_ages(raw: str) -> None:
    pd = parse_date(raw, today=TODAY)
    assert (pd.kind, pd.year_min, pd.year_max, pd.value) == ("age", 1946, 1947, None)


@pytest.mark.parametrize("raw", ["不詳", "不明", "?", "？", "??", "生年月日不詳", "unknown", "-"])
def test_unknown(raw: str) -> None:
    assert parse_date(raw, today=TODAY).kind == "unknown"


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000"])
def test_empty(raw: str | None) -> None:
    pd = parse_date(raw, today=TODAY)
    assert pd.kind == "empty" and pd.value is None and pd.raw == (raw or "")


@pytest.mark.parametrize(
    "raw,message",
    [
        ("1970/2/30", "day 30 is not valid for February 1970"),
        ("1970年2月29日", "day 29 is not valid for February 1970"),
        ("S45.2.30", "day 30 is not valid for February 1970"),
        ("1970/13/1", "month 13 is not valid"),
        ("19701301", "month 13 is not valid"),
        ("1970/4/31", "day 31 is not valid for April 1970"),
        ("1970/0/10", "month 0 is not valid"),
        ("H0.1.1", "era year 0 does not exist"),
        ("abc", "could not read 'abc' as a date"),
        ("200歳", "age 200 is not plausible"),
        ("0999/1/1", "year 999 is out of range"),
        ("45.2.30", "day 30 is not valid for February"),
    ],
)
def test_impossible_dates_raise(raw: str, message: str) -> None:
    with pytest.raises(DateError) as ei:
        parse_date(raw, today=TODAY)
    assert message in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_parsed_date_is_frozen() -> None:
    pd = parse_date("1970/3/1", today=TODAY)
    with pytest.raises(AttributeError):
        pd.value = None  # type: ignore[misc]
    assert isinstance(pd, ParsedDate)


def test_date_variants() -> None:
    v = date_variants(D)
    assert (date(1970, 2, 28), "day±1") in v and (date(1970, 3, 2), "day±1") in v
    assert (date(1970, 1, 3), "dm-swap") in v
    assert (date(1969, 3, 1), "year±1") in v and (date(1971, 3, 1), "year±1") in v
    assert D not in [d for d, _ in v]
    # no swap when day > 12 or day == month; no year±1 for 29 February
    assert not [x for x in date_variants(date(1970, 3, 15)) if x[1] == "dm-swap"]
    assert not [x for x in date_variants(date(1970, 3, 3)) if x[1] == "dm-swap"]
    assert not [x for x in date_variants(date(2000, 2, 29)) if x[1] == "year±1"]
    assert {label for _, label in v} == {"day±1", "dm-swap", "year±1"}
    assert date_variants(date.min) and date_variants(date.max)


def test_format_iso() -> None:
    assert format_iso(parse_date("S45.3.1", today=TODAY)) == "1970-03-01"
    assert format_iso(parse_date("1970年", today=TODAY)) == "1970"
    assert format_iso(parse_date("78歳", today=TODAY)) == ""
    assert format_iso(parse_date("不明", today=TODAY)) == ""
    assert format_iso(parse_date("", today=TODAY)) == ""


def test_today_defaults_to_the_real_date() -> None:
    pd = parse_date("0歳")
    assert pd.year_max == date.today().year
