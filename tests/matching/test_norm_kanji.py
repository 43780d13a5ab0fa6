"""matching.kanji: exact and variant keys, and the generated variant table."""

from __future__ import annotations

import time

import pytest

from matching.data import build_variants, variants_data
from matching.kanji import VARIANT_TABLE_SIZE, exact_key, is_kanji_char, variant_key
from matching.text import GAIJI_WILDCARD

VARIANTS = {
    "高": "髙",
    "崎": "﨑嵜",
    "辺": "邉邊",
    "斎": "齋齊斉",
    "沢": "澤",
    "浜": "濱濵",
    "広": "廣",
    "徳": "德",
    "吉": "𠮷",
    "国": "國",
    "桜": "櫻",
    "真": "眞",
    "恵": "惠",
    "寿": "壽",
    "竜": "龍",
    "島": "嶋嶌",
    "富": "冨",
    "峰": "峯",
    "曽": "曾",
    "槙": "槇",
    "桧": "檜",
    "篭": "籠",
    "柳": "栁",
    "淵": "渕",
    "禰": "祢袮",
    "滝": "瀧",
    "栄": "榮",
    "巌": "巖",
    "亘": "亙",
    "凛": "凜",
    "晃": "晄",
    "鴎": "鷗",
}


@pytest.mark.parametrize("standard,variants", VARIANTS.items())
def test_common_variants_fold_to_one_form(standard: str, variants: str) -> None:
    for v in variants:
        assert variant_key(v) == variant_key(standard), (v, standard)
    assert variant_key(standard) == standard


def test_surnames_fold() -> None:
    assert variant_key("髙橋") == variant_key("高橋") == "高橋"
    assert variant_key("山﨑") == variant_key("山嵜") == variant_key("山崎") == "山崎"
    assert variant_key("渡邉") == variant_key("渡邊") == variant_key("渡辺") == "渡辺"
    assert len({variant_key(s) for s in ("齋藤", "齊藤", "斎藤", "斉藤")}) == 1
    assert variant_key("𠮷田") == "吉田"
    assert variant_key("澤田") == "沢田"
    assert variant_key("濵田") == variant_key("濱田") == "浜田"


@pytest.mark.parametrize(
    "a,b",
    [("土", "士"), ("未", "末"), ("玉", "王"), ("書", "昼"), ("着", "著"), ("師", "帥"), ("宍", "肉"),
     ("功", "切"), ("槁", "橋"), ("耒", "来"), ("埼", "崎"), ("大", "太"), ("沢", "択"), ("斉", "済"),
     ("己", "已"), ("日", "曰"), ("千", "干"), ("天", "夭")],
)
def test_different_characters_stay_different(a: str, b: str) -> None:
    assert variant_key(a) != variant_key(b)


def test_exact_key_keeps_old_forms_and_expands_iteration_mark() -> None:
    assert exact_key("髙橋") == "髙橋" != exact_key("高橋")
    assert exact_key("山\ufa11") == "山\ufa11"
    assert exact_key("佐々木") == "佐佐木" == exact_key("佐佐木")
    assert exact_key("々") == "々"  # nothing to repeat
    assert exact_key(" 山田　太郎 ") == "山田太郎"
    assert exact_key("葛\U000e0100城") == "葛城"
    assert exact_key("") == ""


def test_ke_and_no_fold_only_between_kanji() -> None:
    k = {variant_key(s) for s in ("霞ヶ関", "霞ケ関", "霞が関", "霞ガ関", "霞ヵ関")}
    assert k == {"霞ケ関"}
    assert {variant_key(s) for s in ("一ノ瀬", "一の瀬", "一之瀬")} == {"一ノ瀬"}
    assert variant_key("龍之介") == variant_key("竜ノ介")
    assert variant_key("のぞみ") == "のぞみ"  # kana given name untouched
    assert variant_key("博之") == "博之"  # 之 at the end is a kanji of the name
    assert variant_key("ちか") == "ちか"


def test_gaiji_and_geta_become_wildcard_in_variant_key_only() -> None:
    assert exact_key("\ue050田") == "\ue050田"
    assert variant_key("\ue050田") == GAIJI_WILDCARD + "田"
    assert variant_key("〓田") == GAIJI_WILDCARD + "田"


def test_is_kanji_char() -> None:
    assert all(is_kanji_char(c) for c in "山髙﨑𠮷々\ue000" + GAIJI_WILDCARD)
    assert not any(is_kanji_char(c) for c in "あアaー ・")


def test_variant_table_is_loaded_fast_and_consistent() -> None:
    assert VARIANT_TABLE_SIZE == variants_data.PAIR_COUNT > 19000
    pairs = variants_data.PAIRS
    table = dict(zip(pairs[0::2], pairs[1::2], strict=True))
    # every target is a fixed point: one pass of translate is enough (idempotence)
    assert not [v for v in table.values() if v in table]
    t0 = time.perf_counter()
    {ord(a): ord(b) for a, b in zip(pairs[0::2], pairs[1::2], strict=True)}
    assert time.perf_counter() - t0 < 0.3


def test_generated_variant_table_is_up_to_date() -> None:
    """Regenerating from the installed jntajis gives the committed module (reproducibility)."""
    import jntajis

    if jntajis.__version__ != variants_data.JNTAJIS_VERSION:
        pytest.skip(f"table built with jntajis {variants_data.JNTAJIS_VERSION}, have {jntajis.__version__}")
    t0 = time.perf_counter()
    text = build_variants.render(build_variants.build())
    assert time.perf_counter() - t0 < 5
    assert text == build_variants.OUT.read_text(encoding="utf-8"), (
        "run: python -m matching.data.build_variants"
    )


def test_deny_list_pairs_are_not_folded() -> None:
    for a, b in build_variants.DENY:
        assert variant_key(a) != variant_key(b) or variant_key(a) == a == b, (a, b)
