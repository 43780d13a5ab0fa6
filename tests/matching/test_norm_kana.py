"""matching.kana: katakana conversion and the strict / loose / devoiced keys."""

from __future__ import annotations

import pytest

from matching.kana import (
    devoiced_key,
    is_kana,
    join_loose,
    loose_key,
    pre_skeleton,
    strict_key,
    to_katakana,
)


@pytest.mark.parametrize(
    "raw,kata",
    [
        ("さとう", "サトウ"),
        ("ｻﾄｳ", "サトウ"),
        ("ｶﾞｯｺｳ", "ガッコウ"),
        ("ﾊﾟﾋﾟﾌﾟ", "パピプ"),
        ("ｳﾞｧ", "ヴァ"),
        ("ゔぁ", "ヴァ"),
        ("カ゛", "ガ"),  # spacing dakuten U+309B
        ("ハ゜", "パ"),
        ("ｷｮｳｺ", "キョウコ"),
        ("ｰ", "ー"),
        ("サトウ", "サトウ"),
    ],
)
def test_to_katakana(raw: str, kata: str) -> None:
    assert to_katakana(raw) == kata


def test_to_katakana_keeps_other_characters() -> None:
    assert to_katakana("さとう 花子") == "サトウ 花子"
    assert to_katakana("") == ""


def test_strict_key_drops_separators_and_non_kana() -> None:
    assert strict_key("さとう　はなこ") == "サトウハナコ"
    assert strict_key("サトウ・ハナコ") == "サトウハナコ"
    assert strict_key("ｻﾄｳ ﾊﾅｺ") == "サトウハナコ"
    assert strict_key("(サトウ)、ハナコ!") == "サトウハナコ"
    assert strict_key("サトー") == "サトー"  # ー is part of the reading
    assert strict_key("キョウコ") != strict_key("キヨウコ")  # strict keeps small kana
    assert strict_key("サヽキ") == "ササキ"
    assert strict_key("ミスヾ") == "ミスズ"
    assert strict_key("佐藤") == ""


@pytest.mark.parametrize(
    "group",
    [
        ("サトウ", "サトー", "サト", "さとう", "ｻﾄｳ"),
        ("オオノ", "オーノ", "オノ", "おおの"),
        ("キョウコ", "キヨウコ", "キヨコ", "きょうこ"),
        ("ユウコ", "ユーコ", "ユコ"),
        ("ヂ", "ジ"),
        ("ヅ", "ズ"),
        ("ヲ", "オ"),
        ("ヴ", "ブ"),
        ("ヰ", "イ"),
        ("ヱ", "エ"),
        ("キッタ", "キツタ"),
        ("シュン", "シユン"),
        ("ニイガタ", "ニーガタ", "ニガタ"),
        ("コウノ", "コーノ", "コノ"),
        ("イノウエ", "イノーエ", "イノエ"),
        ("ショウジ", "シヨウジ", "ショージ", "ショジ"),
    ],
)
def test_loose_key_groups(group: tuple[str, ...]) -> None:
    assert len({loose_key(s) for s in group}) == 1, [loose_key(s) for s in group]


def test_loose_key_canonical_reduction() -> None:
    assert loose_key("サトウ") == "サト"
    assert loose_key("オオノ") == "オノ"
    assert loose_key("キョウコ") == "キヨコ"
    assert loose_key("ケイコ") == "ケイコ"  # エイ is kept
    assert loose_key("サトウタロウ") == "サトタロ"


@pytest.mark.parametrize(
    "a,b",
    [("サトウ", "カトウ"), ("ケイコ", "ケコ"), ("ナカジマ", "ナカシマ"), ("ハラ", "バラ"), ("タロウ", "タロス")],
)
def test_loose_key_keeps_real_differences(a: str, b: str) -> None:
    assert loose_key(a) != loose_key(b)


def test_devoiced_key() -> None:
    assert devoiced_key("ナカジマ") == devoiced_key("ナカシマ")
    assert devoiced_key("ヤマザキ") == devoiced_key("ヤマサキ")
    assert devoiced_key("ハラ") == devoiced_key("バラ") == devoiced_key("パラ")
    assert devoiced_key("ヴ") == "フ"
    assert devoiced_key("サトウ") != devoiced_key("サイトウ")


def test_is_kana() -> None:
    assert is_kana("さとう はなこ")
    assert is_kana("サトウ・ハナコ")
    assert is_kana("ｻﾄｳ")
    assert is_kana("サトー")
    assert not is_kana("佐藤")
    assert not is_kana("さとう花子")
    assert not is_kana("SATO")
    assert not is_kana("")
    assert not is_kana("ー・ ")


def test_join_loose_equals_loose_of_concatenation() -> None:
    for a, b in [("サトウ", "ウメコ"), ("コ", "ウオウ"), ("カ", "アア"), ("サトー", "オ"), ("", "ア"), ("オ", "")]:
        assert join_loose(loose_key(a), loose_key(b)) == loose_key(a + b)
        assert join_loose(pre_skeleton(strict_key(a)), pre_skeleton(strict_key(b))) == pre_skeleton(
            strict_key(a + b)
        )
