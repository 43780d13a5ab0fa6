"""`anpi reconcile` scores half of the evacuees in a forked process: same results as one process."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.db import open_shelter_db
from app.services import reconcile
from app.services.registry import import_registry
from app.services.roster import import_roster
from fixtures.generate import make_dataset


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX only")
def test_forked_half_scores_exactly_like_one_process(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "data", residents=3000, evacuees=400, seed=11, encoding="utf-8")
    engine = open_shelter_db(tmp_path / "s.db")
    import_registry(engine, ds.registry_path, gaiji_map=ds.gaiji_map_path)
    import_roster(engine, ds.roster_path)
    matcher, _snap = reconcile.current_matcher(engine)
    from sqlmodel import Session, select

    from app.models import Evacuee

    with Session(engine) as s:
        queries = [reconcile.evacuee_query(e) for e in s.exec(select(Evacuee).order_by(Evacuee.id))]
    assert len(queries) >= 300
    one = matcher.score_all(queries)
    stats: dict[str, int] = {}
    old = reconcile.PARALLEL_MIN_QUERIES
    reconcile.PARALLEL_MIN_QUERIES = 10
    try:
        if threading.active_count() > 1:
            pytest.skip("another thread is running in this test process; fork is refused on purpose")
        two = reconcile.score_in_parallel(matcher, queries, {}, stats=stats)
    finally:
        reconcile.PARALLEL_MIN_QUERIES = old
    assert stats["processes"] == 2
    assert [(p.query.key, [(c.resident_id, round(c.weight, 9)) for c in cands]) for p, cands in one] == \
           [(p.query.key, [(c.resident_id, round(c.weight, 9)) for c in cands]) for p, cands in two]
    # the child's results travel as plain tuples: every part of every candidate comes back exactly
    assert [_exactly(p, cands) for p, cands in one] == [_exactly(p, cands) for p, cands in two]
    assert [(r.decision, r.resident_id, r.probability, r.reasons) for r in matcher.decide_all(one)] == \
           [(r.decision, r.resident_id, r.probability, r.reasons) for r in matcher.decide_all(two)]


def _exactly(pq: object, cands: list) -> tuple:
    return (pq.query.key, pq.birth_iso, pq.town, [(f.family_kana, f.family_kanji) for f in pq.forms],  # type: ignore[attr-defined]
            [(c.index, c.resident_id, c.household_id, c.weight, c.probability, c.contradictions,
              [(f.field, f.level, f.weight, f.note) for f in c.fields]) for c in cands])
