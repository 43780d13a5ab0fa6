"""matching.romaji: one skeleton for every romanisation, and the same skeleton from kana."""

from __future__ import annotations

import pytest

from matching.romaji import (
    alpha_token_similarity,
    alpha_tokens,
    kana_to_skeleton,
    romaji_skeleton,
)

# Each group: romaji spellings (Hepburn, Kunrei, Nihon-shiki, passport, IME, macrons) and kana.
GROUPS = [
    (["SATO", "SATOH", "SATOU", "Satō", "SATOO", "Satô", "sato"], ["サトウ", "サトー", "さと"]),
    (["SHOJI", "SYOZI", "SHOUJI", "SHŌJI", "SHOHJI", "SYOUZI"], ["ショウジ", "しょうじ", "シヨウジ"]),
    (["HOMMA", "HONMA"], ["ホンマ"]),
    (["TSUTOMU", "TUTOMU"], ["ツトム"]),
    (["FUMIKO", "HUMIKO"], ["フミコ"]),
    (["JIRO", "ZIRO", "DIRO", "JIROU", "JIROH"], ["ジロウ", "ヂロウ"]),
    (["CHIHARU", "TIHARU"], ["チハル"]),
    (["SHIN", "SIN"], ["シン"]),
    (["KYOKO", "KYOUKO", "KIYOKO", "KYŌKO"], ["キョウコ", "キヨウコ", "キヨコ"]),
    (["OHNO", "ONO", "OONO", "ŌNO"], ["オオノ", "オーノ", "オノ"]),
    (["HATTORI", "HATORI"], ["ハットリ"]),
    (["SHIN'ICHI", "SHINICHI", "SINITI", "SHIN-ICHI"], ["シンイチ"]),
    (["KOHEI", "KOUHEI", "KŌHEI"], ["コウヘイ"]),
    (["OHASHI", "OOHASHI", "OHHASHI"], ["オオハシ"]),
    (["INOUE"], ["イノウエ"]),
    (["YUKI", "YUUKI", "YŪKI"], ["ユウキ", "ユキ"]),
    (["JUN", "ZYUN", "JYUN"], ["ジュン"]),
    (["CHOJI", "TYOZI", "CHOUJI", "CYOUJI"], ["チョウジ"]),
    (["KONO", "KOHNO", "KOUNO"], ["コウノ"]),
    (["MATSUDA", "MATUDA"], ["マツダ"]),
    (["KANZAKI", "KANNZAKI"], ["カンザキ"]),
    (["SHINYA", "SHIN'YA"], ["シンヤ"]),
    (["JUNICHIRO", "JUN'ICHIRŌ", "ZYUNITIRO"], ["ジュンイチロウ"]),
    (["KAORI", "KAWORI"], ["カヲリ", "カオリ"]),
    (["ICCHI", "ITCHI", "ITTI"], ["イッチ"]),
]


@pytest.mark.parametrize("spellings,kanas", GROUPS)
def test_every_spelling_gives_one_skeleton(spellings: list[str], kanas: list[str]) -> None:
    keys = {romaji_skeleton(s) for s in spellings} | {kana_to_skeleton(k) for k in kanas}
    assert len(keys) == 1, {s: romaji_skeleton(s) for s in spellings} | {k: kana_to_skeleton(k) for k in kanas}


def test_skeleton_examples() -> None:
    assert romaji_skeleton("SATOH") == "SATO"
    assert romaji_skeleton("Homma") == "HONMA"
    assert kana_to_skeleton("ショウジ") == "SIYOZI"
    assert romaji_skeleton("Taro YAMADA") == "TAROYAMADA"  # spaces ignored; callers order parts
    assert romaji_skeleton("山田") == ""
    assert kana_to_skeleton("") == romaji_skeleton("") == ""


@pytest.mark.parametrize(
    "a,b",
    [("SATO", "SAITO"), ("KATO", "GOTO"), ("ONO", "ONODA"), ("HARA", "BARA"), ("KEIKO", "KEKO"),
     ("TAKAHASHI", "TAKAHAMA")],
)
def test_different_names_stay_different(a: str, b: str) -> None:
    assert romaji_skeleton(a) != romaji_skeleton(b)


def test_alpha_tokens_fold_diacritics_and_split() -> None:
    assert alpha_tokens("Nguyễn Văn An") == ["NGUYEN", "VAN", "AN"]
    assert alpha_tokens("ĐẶNG Thị-Hoa") == ["DANG", "THI", "HOA"]
    assert alpha_tokens("Müller, Jürgen") == ["MULLER", "JURGEN"]
    assert alpha_tokens("ＳＡＮＴＯＳ　Ｍａｒｉａ") == ["SANTOS", "MARIA"]
    assert alpha_tokens("Strauß Øster") == ["STRAUSS", "OSTER"]
    assert alpha_tokens("") == []
    assert alpha_tokens("山田") == []


def test_alpha_token_similarity_is_order_free() -> None:
    assert alpha_token_similarity("NGUYEN VAN AN", "An Nguyen Van") == 100.0
    assert alpha_token_similarity("SANTOS, Maria Clara", "MARIA SANTOS") == 100.0  # dropped middle
    assert alpha_token_similarity(["NGUYEN", "VAN", "AN"], "AN NGUYEN VAN") == 100.0
    assert alpha_token_similarity("NGUYEN VAN AN", "TRAN THI BINH") < 60
    # a lone shared token must not look like a full match
    assert alpha_token_similarity("NGUYEN", "NGUYEN VAN AN") < 80
    assert alpha_token_similarity("", "NGUYEN") == 0.0
