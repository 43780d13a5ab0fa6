"""matching.names: script detection and (family, given) splits."""

from __future__ import annotations

import pytest

from matching.names import script_of, split_full_name, split_with_surnames


@pytest.mark.parametrize(
    "s,script",
    [
        ("山田太郎", "kanji"),
        ("髙橋　﨑", "kanji"),
        ("\ue000田", "kanji"),
        ("やまだ たろう", "kana"),
        ("ヤマダ・タロウ", "kana"),
        ("ｻﾄｳ", "kana"),
        ("Taro YAMADA", "latin"),
        ("Nguyễn Văn An", "latin"),
        ("佐藤さくら", "mixed"),
        ("山田 Taro", "mixed"),
        ("Иван", "mixed"),
        ("", "empty"),
        ("  ", "empty"),
        ("123", "empty"),
    ],
)
def test_script_of(s: str, script: str) -> None:
    assert script_of(s) == script


def test_split_full_name_with_spaces() -> None:
    assert split_full_name("山田　太郎") == [("山田", "太郎")]
    assert split_full_name("山田 太郎") == [("山田", "太郎")]
    assert split_full_name("やまだ たろう") == [("やまだ", "たろう")]
    assert split_full_name("山田太郎") == [("山田太郎", "")]
    assert split_full_name("") == []


def test_split_full_name_romaji_both_orders() -> None:
    assert split_full_name("Taro YAMADA") == [("YAMADA", "Taro"), ("Taro", "YAMADA")]
    assert split_full_name("YAMADA Taro") == [("YAMADA", "Taro"), ("Taro", "YAMADA")]
    assert split_full_name("taro yamada") == [("taro", "yamada"), ("yamada", "taro")]
    assert split_full_name("YAMADA, Taro") == [("YAMADA", "Taro")]
    assert split_full_name("Maria Clara SANTOS")[0] == ("SANTOS", "Maria Clara")


def test_split_with_surnames_longest_first_whole_last() -> None:
    surnames = {"山", "山田", "佐々木", "佐"}
    assert split_with_surnames("山田太郎", surnames) == [("山田", "太郎"), ("山", "田太郎"), ("山田太郎", "")]
    assert split_with_surnames("木村拓哉", surnames) == [("木村拓哉", "")]
    assert split_with_surnames("山田", surnames) == [("山", "田"), ("山田", "")]
    assert split_with_surnames("タカハシタロウ", {"タカハシ"}) == [("タカハシ", "タロウ"), ("タカハシタロウ", "")]
    assert split_with_surnames("", surnames) == []
