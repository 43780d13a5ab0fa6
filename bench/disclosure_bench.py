"""What the one 閲覧制限 rule costs the registry search (`match_one`, what /api/search and `anpi match` run).

    python bench/disclosure_bench.py [--residents 60000] [--evacuees 1000] [--queries 300]

Builds a shelter database (registry + roster, reconciled), then times `match_one` for the same
queries (names, birth dates and addresses of registry residents, some of them 閲覧制限 or in a
flagged household) with the search as it was before the rule (`git show <rev>:app/services/search.py`,
loaded beside) and as it is now; and `disclosure.protected()` cold (first call after a new
snapshot) and warm. Prints p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _old_search(rev: str) -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{rev}:app/services/search.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    mod = types.ModuleType("old_search")
    exec(compile(src, "old_search.py", "exec"), mod.__dict__)
    return mod


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residents", type=int, default=60_000)
    ap.add_argument("--evacuees", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--before", default="9b30ce9", help="revision whose search.py is the baseline")
    a = ap.parse_args()

    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services import disclosure
    from app.services.reconcile import reconcile_all
    from app.services.registry import import_registry
    from app.services.roster import import_roster
    from app.services.search import match_one
    from fixtures.generate import make_dataset

    tmp = Path(tempfile.mkdtemp(prefix="anpi-disclosure-bench-"))
    ds = make_dataset(tmp / "data", residents=a.residents, evacuees=a.evacuees, seed=7)
    engine = open_shelter_db(tmp / "shelter.db")
    import_registry(engine, ds.registry_path, as_of=date(2026, 10, 31))
    import_roster(engine, ds.roster_path)
    reconcile_all(engine)
    with ds.registry_path.open(encoding="utf-8-sig") as fh:
        rows = [r for r in csv.DictReader(fh) if r["氏"] and r["名"]]
    rnd = random.Random(1)
    flagged = [r for r in rows if r["閲覧制限"]]
    picks = rnd.sample(rows, min(a.queries - len(flagged[:30]), len(rows))) + flagged[:30]
    queries = [dict(name=f"{r['氏']} {r['名']}", birth=r["生年月日"] if n % 2 else "",
                    address=r["住所"] if n % 3 else "") for n, r in enumerate(picks)]
    old = _old_search(a.before)

    with Session(engine) as s:
        t = time.perf_counter()
        disclosure.protected(s)
        cold = (time.perf_counter() - t) * 1000
        warm = []
        for _ in range(50):
            t = time.perf_counter()
            disclosure.protected(s)
            warm.append((time.perf_counter() - t) * 1000)
    for q in queries[:20]:  # build the matcher, warm caches
        match_one(engine, **q)
    funcs = (("before (no rule)", old.match_one), ("now (one rule)", match_one))
    times: dict[str, list[float]] = {label: [] for label, _ in funcs}
    for q in queries:  # interleaved: a shared machine's noise falls on both alike
        for label, fn in funcs:
            t = time.perf_counter()
            fn(engine, **q)
            times[label].append((time.perf_counter() - t) * 1000)
    for label, xs in times.items():
        print(f"match_one {label:18s}: p50 {statistics.median(xs):6.1f} ms  p95 {_pct(xs, 0.95):6.1f} ms"
              f"  ({len(xs)} queries, {a.residents} residents, {a.evacuees} evacuees)")
    print(f"disclosure.protected(): cold {cold:.1f} ms, warm p50 {statistics.median(warm):.2f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
