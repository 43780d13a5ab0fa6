"""Decision tests for the dangerous cases: a wrong `auto` marks the wrong person safe."""

from __future__ import annotations

import random
from datetime import date

import pytest

from matching.address import house_key
from matching.engine import Matcher
from matching.person import registry_keys
from matching.query import Query
from matching.registry_index import RegistryIndex, RegistryRecord

FAMILIES = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
            ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
            ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
            ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ")]
GIVENS = [("太郎", "タロウ", "M"), ("一郎", "イチロウ", "M"), ("健", "ケン", "M"), ("翔", "ショウ", "M"),
          ("大輔", "ダイスケ", "M"), ("誠", "マコト", "M"), ("実", "ミノル", "M"), ("浩", "ヒロシ", "M"),
          ("花子", "ハナコ", "F"), ("京子", "キョウコ", "F"), ("恵子", "ケイコ", "F"), ("幸子", "サチコ", "F"),
          ("美咲", "ミサキ", "F"), ("陽子", "ヨウコ", "F"), ("由美", "ユミ", "F"), ("真理", "マリ", "F")]

AS_OF = date(2026, 10, 31)


def rec(rid: str, hh: str, fam: str, giv: str, fam_k: str, giv_k: str, birth: str, sex: str,
        address: str = "岩手県陸前高田市高田町字館の沖1", alpha: str = "") -> RegistryRecord:
    k = registry_keys(fam, giv, fam_k, giv_k, alpha, date.fromisoformat(birth) if birth else None, sex, address)
    return RegistryRecord(rid, hh, k.family_kana_loose, k.given_kana_loose, k.family_variant, k.given_variant,
                          k.alpha_tokens, k.birth, k.sex, k.town, False, house_key(address) or "")


MORAE = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"


def filler(n: int, seed: int = 7) -> list[RegistryRecord]:
    """A registry whose names are as varied as a real one: a quarter from the common lists
    above (so namesakes exist), the rest kana-only names made of random morae."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        if rnd.random() < 0.25:
            fam, fam_k = rnd.choice(FAMILIES)
            giv, giv_k, sex = rnd.choice(GIVENS)
        else:
            fam, fam_k = "", "".join(rnd.choice(MORAE) for _ in range(rnd.randint(2, 4)))
            giv, giv_k, sex = "", "".join(rnd.choice(MORAE) for _ in range(rnd.randint(2, 3))), rnd.choice("MF")
        birth = date(rnd.randint(1930, 2020), rnd.randint(1, 12), rnd.randint(1, 28)).isoformat()
        out.append(rec(f"F{i:05d}", f"FH{i // 3:05d}", fam, giv, fam_k, giv_k, birth, sex,
                       f"高田町{rnd.choice(['字館の沖', '字大町', '字鳴石'])}{rnd.randint(1, 40)}"))
    return out


SPECIAL = [
    rec("1001", "H1", "髙橋", "一郎", "タカハシ", "イチロウ", "1970-03-01", "M", "高田町字館の沖12-3"),
    rec("1002", "H1", "髙橋", "京子", "タカハシ", "キヨウコ", "1972-11-03", "F", "高田町字館の沖12-3"),
    rec("1003", "H1", "髙橋", "悠太", "タカハシ", "ユウタ", "2015-06-10", "M", "高田町字館の沖12-3"),
    rec("1004", "H1", "髙橋", "悠斗", "タカハシ", "ユウト", "2015-06-10", "M", "高田町字館の沖12-3"),
    rec("2001", "H2", "東海林", "太郎", "ショウジ", "タロウ", "1950-03-01", "M", "米崎町字神田1"),
    rec("2002", "H3", "東海林", "太郎", "ショウジ", "タロウ", "1950-07-12", "M", "気仙町字町裏2"),
    rec("3001", "H4", "山田", "太郎", "ヤマダ", "タロウ", "1980-05-05", "M", "高田町字大町3"),
    rec("4001", "H5", "グエン", "ヴァン アン", "グエン", "ヴァンアン", "1990-01-02", "M", "高田町1", "NGUYEN VAN AN"),
]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    index = RegistryIndex([*SPECIAL, *filler(3000)])
    return Matcher(index, readings=Matcher.learn_readings(index), as_of=AS_OF, today=date(2026, 11, 26))


def test_old_form_kanji_and_era_date_auto_link(matcher: Matcher) -> None:
    r = matcher.match(Query(name="高橋 一郎", name_kana="たかはし いちろう", birth="S45.3.1", sex="男"))
    assert (r.decision, r.resident_id) == ("auto", "1001")
    assert "birth=exact" in r.reasons


def test_legacy_large_kana_in_registry(matcher: Matcher) -> None:
    r = matcher.match(Query(name="タカハシ キョウコ", birth="昭和47年11月3日", sex="女"))
    assert (r.decision, r.resident_id) == ("auto", "1002")


def test_romaji_either_order(matcher: Matcher) -> None:
    for name in ("Taro YAMADA", "YAMADA TAROU"):
        r = matcher.match(Query(name=name, birth="1980/5/5"))
        assert r.resident_id == "3001" and r.decision == "auto", (name, r)


def test_foreign_resident_alpha_name_any_order(matcher: Matcher) -> None:
    r = matcher.match(Query(name="AN NGUYEN VAN", birth="1990-01-02"))
    assert (r.decision, r.resident_id) == ("auto", "4001")


def test_same_name_same_birth_year_is_never_auto(matcher: Matcher) -> None:
    r = matcher.match(Query(name="東海林 太郎", name_kana="ショウジ タロウ", birth="1950年", sex="男"))
    assert r.decision == "review"
    assert {c.resident_id for c in r.candidates[:2]} == {"2001", "2002"}


def test_twins_are_not_confused(matcher: Matcher) -> None:
    r = matcher.match(Query(name="髙橋 悠太", name_kana="タカハシ ユウタ", birth="2015-06-10", sex="男"))
    assert r.resident_id == "1003"
    assert r.decision in ("auto", "review")
    # with the given name missing the twins cannot be told apart: never auto
    r2 = matcher.match(Query(name_kana="タカハシ", birth="2015-06-10", sex="男"))
    assert r2.decision != "auto"


def test_newborn_after_snapshot_is_none(matcher: Matcher) -> None:
    r = matcher.match(Query(name="髙橋 陽菜", name_kana="タカハシ ヒナ", birth="2026-11-20", sex="女",
                            address="高田町字館の沖12-3"))
    assert r.decision == "none" and r.resident_id is None


def test_visitor_with_a_common_name_is_not_auto(matcher: Matcher) -> None:
    # 佐藤 花子 exists many times in the filler; this one was born on a day none of them was
    r = matcher.match(Query(name="佐藤 花子", name_kana="サトウ ハナコ", birth="1961-02-17", sex="女",
                            address="東京都千代田区千代田1-1"))
    assert r.decision != "auto"


def test_sex_contradiction_blocks_auto(matcher: Matcher) -> None:
    r = matcher.match(Query(name="高橋 一郎", name_kana="タカハシ イチロウ", birth="1970-03-01", sex="女"))
    assert r.decision != "auto"


def test_two_evacuees_never_auto_link_one_resident(matcher: Matcher) -> None:
    q = dict(name="山田 太郎", name_kana="ヤマダ タロウ", birth="1980-05-05", sex="男")
    results = matcher.reconcile([Query(key="e1", **q), Query(key="e2", **q)])
    assert [r.decision for r in results] == ["review", "review"]
    assert all("possible-duplicate" in r.flags for r in results)


def test_rejected_candidate_is_not_proposed_again(matcher: Matcher) -> None:
    q = Query(key="e1", name="山田 太郎", name_kana="ヤマダ タロウ", birth="1980-05-05", sex="男")
    [r] = matcher.reconcile([q], rejected={"e1": {"3001"}})
    assert all(c.resident_id != "3001" for c in r.candidates)
    assert r.resident_id != "3001"


def test_confirmed_resident_is_not_auto_linked_to_another(matcher: Matcher) -> None:
    q = Query(key="e2", name="山田 太郎", name_kana="ヤマダ タロウ", birth="1980-05-05", sex="男")
    [r] = matcher.reconcile([q], taken={"3001": "e1"})
    assert r.decision == "review" and "possible-duplicate" in r.flags


def test_household_arriving_together_supports_each_other(matcher: Matcher) -> None:
    # ages instead of dates: alone each is uncertain; together they point at one household
    qs = [Query(key="a", name="タカハシ イチロウ", birth="56歳", sex="男", household_key="g1"),
          Query(key="b", name="タカハシ キョウコ", birth="54歳", sex="女", household_key="g1")]
    alone = [matcher.match(q) for q in qs]
    joint = matcher.reconcile(qs)
    for a, j in zip(alone, joint):
        assert j.resident_id in ("1001", "1002")
        assert j.probability >= a.probability
    assert any("household=" in j.reasons for j in joint)


def test_search_returns_reasons_for_partial_input(matcher: Matcher) -> None:
    cands = matcher.search(Query(name_kana="しょうじ"))
    assert {c.resident_id for c in cands[:2]} == {"2001", "2002"}
    assert all(c.reasons() for c in cands)


def test_empty_query_is_none(matcher: Matcher) -> None:
    assert matcher.match(Query()).decision == "none"
