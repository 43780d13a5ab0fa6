"""The speed-ups of reconciliation change nothing a caller can see.

* `RegistryIndex` turns rows into columns a chunk at a time: the same columns, interning and
  blocks as adding them one by one, from RegistryRecord objects or plain tuples alike.
* `Scorer.score_many` compares each distinct resident value once per query: every candidate
  is exactly what scoring that resident alone gives.
* `by_family` (surname-only input) is built on first use and finds what it always found.
"""

from __future__ import annotations

import random

from matching.engine import Matcher
from matching.query import Query
from matching.registry_index import RegistryIndex, _CHUNK
from tests.matching.test_engine_decisions import AS_OF, SPECIAL, filler


def _as_tuples(records: list) -> list[tuple]:
    return [tuple(r) for r in records]


def test_index_from_records_and_tuples_across_chunks_is_the_same() -> None:
    records = filler(_CHUNK + 1234, seed=3) + SPECIAL  # more than one chunk
    a = RegistryIndex(records)
    b = RegistryIndex(iter(_as_tuples(records)))  # a one-pass iterator, like a database cursor
    assert a.size == b.size == len(records)
    for col in ("resident_id", "household_id", "family_kana", "given_kana", "family_kanji", "given_kanji", "alpha",
                "birth", "sex", "town", "restricted", "house"):
        assert getattr(a, col) == getattr(b, col) == [getattr(r, col) for r in records]
    # interned: one string object per distinct value
    assert len({id(x) for x in a.family_kana}) == len(set(a.family_kana))
    for name in ("by_full_kana", "by_full_kanji", "by_birth", "by_family_year", "by_given_year", "by_skeleton"):
        pa, pb = getattr(a, name), getattr(b, name)
        assert len(pa) == len(pb) and all(list(pa.get(k)) == list(pb.get(k)) for k in pa._d)
    assert a.freq_birth == b.freq_birth and a.known_houses == b.known_houses


def test_empty_registry_builds() -> None:
    ix = RegistryIndex([])
    assert ix.size == 0 and len(ix.by_family) == 0 and ix.by_full_kana.get("サトウ") == []


def test_score_many_equals_scoring_each_resident_alone() -> None:
    ix = RegistryIndex(filler(3000, seed=5) + SPECIAL)
    m = Matcher(ix, readings=Matcher.learn_readings(ix), as_of=AS_OF)
    rnd = random.Random(1)
    queries = [Query(name="髙橋 一郎", birth="S45.3.1", sex="男", address="高田町字館の沖12-3"),
               Query(name="タカハシ ケイコ", birth="1972-11-03"), Query(name="Takahashi Ichiro", birth="1970/3/1"),
               Query(name="高橋京子"), Query(name="サトウ", birth="78歳")]
    for i in rnd.sample(range(ix.size), 40):
        queries.append(Query(name=f"{ix.family_kanji[i]} {ix.given_kanji[i]}".strip() or ix.family_kana[i],
                             name_kana=f"{ix.family_kana[i]} {ix.given_kana[i]}", birth=ix.birth[i]))
    checked = shared = 0
    for q in queries:
        pq = m.prepare(q)
        idx = sorted(m.candidate_indexes(pq))
        together = m.scorer.score_many(pq, idx)
        alone = [m.scorer.score_many(pq, [i])[0] for i in idx]
        for a, b in zip(together, alone, strict=True):
            assert (a.index, a.resident_id, a.household_id, a.weight, a.contradictions) == \
                   (b.index, b.resident_id, b.household_id, b.weight, b.contradictions)
            assert [(f.field, f.level, f.weight, f.note) for f in a.fields] == \
                   [(f.field, f.level, f.weight, f.note) for f in b.fields]
            assert a.fields is not b.fields and a.contradictions is not b.contradictions
            checked += 1
        shared += sum(len(c.fields) for c in together) - len({id(f) for c in together for f in c.fields})
    assert checked > 100 and shared > 100  # many candidates, and the per-query memo was used


def test_candidates_own_their_lists() -> None:
    """Household reasoning appends to one candidate's fields; its namesakes must not see it."""
    ix = RegistryIndex(filler(500, seed=9) + SPECIAL)
    m = Matcher(ix, readings=Matcher.learn_readings(ix), as_of=AS_OF)
    pq = m.prepare(Query(name="髙橋", name_kana="タカハシ"))
    cands = m.scorer.score_many(pq, sorted(m.candidate_indexes(pq)))
    assert len(cands) >= 2
    before = [len(c.fields) for c in cands]
    cands[0].fields.append(cands[0].fields[0])
    cands[0].contradictions.append("x")
    assert [len(c.fields) for c in cands[1:]] == before[1:]
    assert all("x" not in c.contradictions for c in cands[1:])


def test_surname_only_input_uses_the_lazily_built_block() -> None:
    ix = RegistryIndex(filler(800, seed=2) + SPECIAL)
    assert "by_family" not in ix.__dict__  # not built until asked
    m = Matcher(ix, readings=Matcher.learn_readings(ix), as_of=AS_OF)
    found = {c.resident_id for c in m.search(Query(name="髙橋"), limit=50)}
    assert {"1001", "1002", "1003", "1004"} <= found
    assert "by_family" in ix.__dict__
    kana_block = set(ix.by_family.get("タカハシ"))
    assert {i for i in range(ix.size) if ix.family_kana[i] == "タカハシ"} == kana_block
