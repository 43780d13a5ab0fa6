"""matching.address: canonical address text and town keys."""

from __future__ import annotations

import pytest

from matching.address import normalize_address, town_key, town_keys_compatible


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1-2-3", "1-2-3"),
        ("1丁目2番3号", "1-2-3"),
        ("1丁目2番地3", "1-2-3"),
        ("一丁目二番三号", "1-2-3"),
        ("１丁目２番地３", "1-2-3"),
        ("1−2−3", "1-2-3"),
        ("1ー2ー3", "1-2-3"),
        ("1‐2‐3", "1-2-3"),
        ("2番地の3", "2-3"),
        ("二番地の三", "2-3"),
        ("12番地", "12"),
        ("第3地割12番地3", "3-12-3"),
        ("第三地割十二番地三", "3-12-3"),
        ("中央三丁目", "中央3"),
        ("宮城県石巻市中央二丁目3-4", "宮城県石巻市中央2-3-4"),
        ("高田町字館の沖12番地3", "高田町字館の沖12-3"),
        ("仙台市青葉区一番町四丁目7-17", "仙台市青葉区一番町4-7-17"),  # 一番町 is a name
        ("三田1-1", "三田1-1"),
        ("八戸市三日町1", "八戸市三日町1"),
        ("四日市市諏訪町1-5", "四日市市諏訪町1-5"),
        ("十日町市本町 1 - 2", "十日町市本町1-2"),
        ("", ""),
    ],
)
def test_normalize_address(raw: str, expected: str) -> None:
    assert normalize_address(raw) == expected


@pytest.mark.parametrize(
    "raw,key",
    [
        ("岩手県陸前高田市高田町字館の沖12-3", "高田町館ノ沖"),
        ("高田町館の沖12番地3", "高田町館ノ沖"),
        ("陸前高田市高田町字館ノ沖12", "高田町館ノ沖"),
        ("宮城県石巻市中央二丁目3-4", "中央2"),
        ("石巻市中央2-3-4", "中央2"),
        ("中央2丁目3番4号", "中央2"),
        ("東京都千代田区霞が関1丁目2番3号", "霞ケ関1"),
        ("霞ヶ関1-2-3", "霞ケ関1"),
        ("宮城県南三陸町志津川字五日町12", "志津川五日町"),
        ("岩手県上閉伊郡大槌町小鎚第32地割126", "小鎚32"),
        ("岩手県岩手郡雫石町第三地割十二番地", "雫石町3"),
        ("仙台市青葉区一番町四丁目7-17", "一番町4"),
        ("三重県四日市市諏訪町1-5", "諏訪町"),
        ("広島県廿日市市下平良1", "下平良"),
        ("市川市市川1-1-1", "市川1"),
        ("十日町市本町1", "本町"),
        ("八戸市三日町1", "三日町"),
        ("大字高田字館の沖12", "高田館ノ沖"),
        ("北海道札幌市中央区北1条西2丁目", "北1条西2"),
        ("京都府京都市中京区河原町1", "河原町"),
        ("神奈川県横浜市中区山下町1", "山下町"),
    ],
)
def test_town_key(raw: str, key: str) -> None:
    assert town_key(raw) == key


@pytest.mark.parametrize("raw", ["", "   ", "12-3", "1丁目2番地3", "石巻市", "宮城県"])
def test_town_key_none_without_a_town(raw: str) -> None:
    assert town_key(raw) is None


def test_town_keys_compatible() -> None:
    assert town_keys_compatible("中央2", "中央2")
    assert town_keys_compatible("中央", "中央2")  # chome not typed
    assert not town_keys_compatible("中央1", "中央2")
    assert town_keys_compatible("大槌町小鎚", "小鎚")  # municipality written without 郡
    assert not town_keys_compatible("高田", "田")
    assert not town_keys_compatible("", "")
    assert not town_keys_compatible(None, "中央")
