"""`anpi reconcile` scores half of the evacuees in a forked process: same results as one process."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.db import open_shelter_db
from app.services import reconcile
from app.services.registry import import_registry
from app.services.roster import import_roster
from fixtures.generate import make_dataset


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork is POSIX only")
def test_forked_half_scores_exactly_like_one_process(tmp_path: Path) -> None:
    """Run in a fresh interpreter: `score_in_parallel` refuses to fork a process where other
    threads run (as a pytest worker may have), and then this comparison would not happen."""
    res = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                          "from tests.app.test_reconcile_parallel import compare; compare(Path(sys.argv[1]))",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.strip().endswith("same results from 2 processes"), res.stdout[-2000:]


def compare(tmp_path: Path) -> None:
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
        assert threading.active_count() == 1, "a fresh interpreter runs no other thread"
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
    print(f"same results from {stats['processes']} processes")


def _exactly(pq: object, cands: list) -> tuple:
    return (pq.query.key, pq.birth_iso, pq.town, [(f.family_kana, f.family_kanji) for f in pq.forms],  # type: ignore[attr-defined]
            [(c.index, c.resident_id, c.household_id, c.weight, c.probability, c.contradictions,
              [(f.field, f.level, f.weight, f.note) for f in c.fields]) for c in cands])
