"""matching.readings: registry-learned readings first, pykakasi as the fallback."""

from __future__ import annotations

import pytest

from matching.readings import ReadingModel


@pytest.fixture(scope="module")
def model() -> ReadingModel:
    m = ReadingModel()
    m.learn(
        [
            ("髙橋", "タカハシ"), ("高橋", "タカハシ"), ("高橋", "タカバシ"),
            ("幸子", "サチコ"), ("幸子", "サチコ"), ("幸子", "ユキコ"), ("幸子", "こうこ"),
            ("東海林", "ショウジ"), ("東海林", "トウカイリン"), ("東海林", "ショウジ"),
            ("", "タロウ"), ("太郎", ""), ("さくら", "サクラ"),
        ]
    )
    return m


def test_learned_readings_by_frequency(model: ReadingModel) -> None:
    assert model.readings("幸子") == ["サチコ", "コウコ", "ユキコ"]
    assert model.readings("幸子", limit=1) == ["サチコ"]
    assert model.readings("東海林")[:2] == ["ショウジ", "トウカイリン"]
    assert model.learned("幸子") == [("サチコ", 2), ("コウコ", 1), ("ユキコ", 1)]


def test_variants_share_counts(model: ReadingModel) -> None:
    assert model.readings("髙橋")[0] == "タカハシ"
    assert model.learned("髙橋") == model.learned("高橋") == [("タカハシ", 2), ("タカバシ", 1)]


def test_pykakasi_fallback_on_folded_text(model: ReadingModel) -> None:
    # pykakasi reads neither 髙 nor 﨑; folding first gives it 高/崎.
    assert model.readings("山﨑") == ["ヤマザキ"]
    assert model.dictionary_reading("髙田") == "タカタ" or model.dictionary_reading("髙田") == "タカダ"
    assert model.readings("佐藤", limit=3) == ["サトウ"]
    assert model.readings("\ue000田") == []  # unmapped gaiji: no reading rather than a partial one
    assert model.readings("") == [] and model.readings("山田", limit=0) == []


def test_kana_input_and_skipped_pairs(model: ReadingModel) -> None:
    assert model.readings("さくら") == ["サクラ"]
    assert len(model) == 3  # 高橋, 幸子, 東海林 (empty sides and kana-only pairs teach nothing)


def test_pykakasi_is_lazy_and_can_be_disabled() -> None:
    m = ReadingModel(use_pykakasi=False)
    assert m.readings("山田") == []
    assert m._kks is None


def test_name_readings_combines_parts(model: ReadingModel) -> None:
    r = model.name_readings("高橋", "幸子")
    assert r[0] == "タカハシサチコ"
    assert set(r) >= {"タカハシサチコ", "タカバシサチコ", "タカハシユキコ"}
    assert model.name_readings("高橋", "") == model.readings("高橋")
