"""matching.person: the PersonKeys / QueryKeys contract."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from matching.kana import devoiced_key, loose_key, strict_key
from matching.kanji import exact_key, variant_key
from matching.person import PersonKeys, QueryKeys, parse_sex, query_keys, registry_keys, surname_keys
from matching.readings import ReadingModel
from matching.romaji import kana_to_skeleton, romaji_skeleton
from matching.text import GAIJI_WILDCARD

TODAY = date(2025, 6, 1)


def test_registry_keys_fields() -> None:
    k = registry_keys("髙橋", "京子", "タカハシ", "キヨウコ", "", date(1970, 3, 1), "2",
                      "岩手県陸前高田市高田町字館の沖12-3")
    assert k == PersonKeys(
        kanji_exact="髙橋京子",
        kanji_variant="高橋京子",
        family_variant="高橋",
        given_variant="京子",
        kana_strict="タカハシキヨウコ",
        kana_loose="タカハシキヨコ",
        family_kana_loose="タカハシ",
        given_kana_loose="キヨコ",
        kana_devoiced="タカハシキヨコ",
        romaji="TAKAHASIKIYOKO",
        alpha_tokens="",
        birth="1970-03-01",
        birth_year=1970,
        sex="F",
        town="高田町館ノ沖",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.sex = "M"  # type: ignore[misc]


def test_registry_keys_all_missing() -> None:
    k = registry_keys("", "", "", "", "", None, "", "")
    assert all(getattr(k, f.name) in ("", None) for f in dataclasses.fields(k))
    k = registry_keys(None, None, None, None, None, None, None, None)  # type: ignore[arg-type]
    assert k.kanji_exact == "" and k.birth_year is None


def test_registry_whole_name_keys_equal_keys_of_concatenation() -> None:
    pairs = [("サトウ", "ウメコ"), ("コウノ", "オサム"), ("ホンマ", "ナオコ"), ("シン", "ヤ"), ("ハットリ", "ッタ")]
    for fk, gk in pairs:
        k = registry_keys("x", "y", fk, gk, "", None, "", "")
        assert k.kana_strict == strict_key(fk + gk)
        assert k.kana_loose == loose_key(fk + gk)
        assert k.kana_devoiced == devoiced_key(fk + gk)
        assert k.romaji == kana_to_skeleton(fk + gk)
        assert k.family_kana_loose == loose_key(fk) and k.given_kana_loose == loose_key(gk)


def test_registry_keys_gaiji_and_alpha() -> None:
    k = registry_keys("\ue000田", "\ue001子", "ヨシダ", "ハナコ", "", None, "", "",
                      gaiji_map={"\ue000": "𠮷"})
    assert k.kanji_exact == "𠮷田\ue001子"
    assert k.kanji_variant == "吉田" + GAIJI_WILDCARD + "子"
    assert k.family_variant == "吉田"
    f = registry_keys("", "", "", "", "NGUYEN VAN AN", date(1990, 1, 2), "男", "")
    assert f.alpha_tokens == "AN NGUYEN VAN"
    assert f.romaji == romaji_skeleton("NGUYEN VAN AN")
    assert f.sex == "M"


def test_registry_keys_with_kana_prefers_kana_for_romaji() -> None:
    k = registry_keys("", "", "グエン", "バン アン", "NGUYEN VAN AN", None, "", "")
    assert k.romaji == kana_to_skeleton("グエンバンアン")


@pytest.mark.parametrize(
    "raw,sex",
    [("1", "M"), ("男", "M"), ("M", "M"), ("m", "M"), ("male", "M"), ("Male", "M"), ("男性", "M"), ("１", "M"),
     ("2", "F"), ("女", "F"), ("F", "F"), ("f", "F"), ("female", "F"), ("女性", "F"), (" 女 ", "F"), ("Ｆ", "F"),
     ("", ""), (None, ""), ("9", ""), ("不明", ""), ("x", "")],
)
def test_parse_sex(raw: str | None, sex: str) -> None:
    assert parse_sex(raw) == sex


def test_query_keys_kanji_with_kana() -> None:
    q = query_keys("高橋　京子", "たかはし きょうこ", "S47.11.3", "女", "高田町館の沖12番地3", today=TODAY)
    assert isinstance(q, QueryKeys)
    assert q.script == "kanji"
    assert q.splits == (("高橋", "京子"),)
    assert q.kanji_exact == "高橋京子" and q.kanji_variant == "高橋京子"
    assert q.readings == ("タカハシキョウコ",) and q.reading_source == "name_kana"
    assert q.kana_loose == ("タカハシキヨコ",)
    assert q.kana_splits == (("タカハシ", "キヨコ"),)
    assert q.romaji == ("TAKAHASIKIYOKO",)
    assert q.birth.value == date(1972, 11, 3) and q.birth_error == ""
    assert (q.sex, q.town) == ("F", "高田町館ノ沖")
    # the registry row of the same person agrees on every key the query has
    r = registry_keys("髙橋", "京子", "タカハシ", "キヨウコ", "", date(1972, 11, 3), "2",
                      "岩手県陸前高田市高田町字館の沖12-3")
    assert r.kanji_variant == q.kanji_variant and r.kana_loose in q.kana_loose and r.romaji in q.romaji
    assert r.town == q.town and r.sex == q.sex and r.birth == q.birth.value.isoformat()


def test_query_keys_kanji_only_uses_surnames_and_reading_model() -> None:
    m = ReadingModel(use_pykakasi=False)
    m.learn([("髙橋", "タカハシ"), ("京子", "キョウコ"), ("京子", "ケイコ"), ("京子", "キョウコ")])
    surnames = set(surname_keys("髙橋", "タカハシ"))
    assert surnames == {"高橋", "タカハシ"}
    q = query_keys("高橋京子", reading_model=m, surnames=surnames, today=TODAY)
    assert q.splits == (("高橋", "京子"), ("高橋京子", ""))
    assert q.variant_splits[0] == ("高橋", "京子")
    assert q.readings == ("タカハシキョウコ", "タカハシケイコ")
    assert q.reading_source == "model"
    assert q.kana_loose == ("タカハシキヨコ", "タカハシケイコ")
    # without a model there are no readings; without surnames no split
    q2 = query_keys("高橋京子", today=TODAY)
    assert q2.splits == (("高橋京子", ""),) and q2.readings == () and q2.reading_source == ""


def test_query_keys_kana_name() -> None:
    q = query_keys("たかはしきょうこ", surnames={"タカハシ"}, today=TODAY)
    assert q.script == "kana" and q.reading_source == "name"
    assert q.readings == ("タカハシキョウコ",)
    assert q.splits[0] == ("タカハシ", "キョウコ")
    assert q.kana_splits == (("タカハシ", "キヨコ"),)
    assert q.kanji_exact == ""


def test_query_keys_romaji_either_order() -> None:
    q = query_keys("Kyoko TAKAHASHI", birth="1972-11-03", today=TODAY)
    assert q.script == "latin"
    assert q.splits == (("TAKAHASHI", "Kyoko"), ("Kyoko", "TAKAHASHI"))
    assert q.romaji == ("TAKAHASIKIYOKO", "KIYOKOTAKAHASI")
    assert q.alpha_tokens == "KYOKO TAKAHASHI"
    assert q.readings == ()
    r = registry_keys("髙橋", "京子", "タカハシ", "キヨウコ", "", None, "", "")
    assert r.romaji == q.romaji[0]


def test_query_keys_never_raises_on_bad_birth() -> None:
    q = query_keys("山田", birth="1970/2/30", today=TODAY)
    assert q.birth.kind == "unknown"
    assert q.birth_error == "day 30 is not valid for February 1970"
    q = query_keys(birth="78歳", today=TODAY)
    assert q.birth.kind == "age" and q.birth.year_min == 1946


def test_query_keys_empty() -> None:
    q = query_keys(today=TODAY)
    assert q.script == "empty" and q.splits == () and q.readings == () and q.birth.kind == "empty"
    q = query_keys(None, None, None, None, None, today=TODAY)
    assert q.name == "" and q.sex == "" and q.town == ""


def test_query_keys_gaiji_placeholder_typed_by_staff() -> None:
    q = query_keys("〓田 花子", today=TODAY)
    assert q.kanji_variant == GAIJI_WILDCARD + "田花子"
    assert q.kanji_exact == exact_key("〓田花子")
    assert variant_key("〓田") == GAIJI_WILDCARD + "田"


def test_query_keys_spaced_kana_and_mixed_names() -> None:
    q = query_keys("やまだ たろう", today=TODAY)
    assert q.splits == (("ヤマダ", "タロウ"),)
    assert q.kana_splits == (("ヤマダ", "タロ"),)
    m = ReadingModel(use_pykakasi=False)
    m.learn([("佐藤", "サトウ")])
    q = query_keys("佐藤さくら", reading_model=m, surnames={"佐藤"}, today=TODAY)
    assert q.script == "mixed"
    assert q.splits[0] == ("佐藤", "さくら")
    assert q.readings == ("サトウサクラ",)


def test_stored_keys_equal_registry_keys() -> None:
    """The import's lean key function must store exactly what registry_keys computes."""
    from datetime import date

    from matching.address import house_key
    from matching.person import registry_keys, stored_keys

    gaiji = {"\ue000": "𠮷"}
    cases = [("髙橋", "一郎", "タカハシ", "イチロウ", "", "岩手県陸前高田市高田町字館の沖12-3"),
             ("\ue000田", "", "ヨシダ", "", "", ""),
             ("グエン", "ヴァン アン", "グエン", "ヴァンアン", "NGUYEN VAN AN", "高田町1")]
    for fam, giv, fk, gk, alpha, addr in cases:
        k = registry_keys(fam, giv, fk, gk, alpha, date(1970, 3, 1), "1", addr, gaiji)
        assert stored_keys(fam, giv, fk, gk, alpha, addr, gaiji) == (
            k.family_variant, k.given_variant, k.family_kana_loose, k.given_kana_loose, k.alpha_tokens, k.town,
            house_key(addr) or "")
