"""Matching at registration: what one arrival costs at 60,000 residents and 6,000 evacuees.

Builds a shelter file from the fixtures (registry and roster), imports the roster (every row is
matched at once at the end of the import: timed), then registers single arrivals one at a time
as the 受付 desk does (register + `match_now` + commit) and times each, with the duplicate look-ups
the desk asks while typing (`find_duplicates`, `registrations_of`). Target: one person matched
in well under a second (the engine's index is cached per snapshot, as for search).

    python bench/match_now_bench.py [--residents 60000] [--evacuees 6000] [--arrivals 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residents", type=int, default=60000)
    ap.add_argument("--evacuees", type=int, default=6000)
    ap.add_argument("--arrivals", type=int, default=30)
    args = ap.parse_args()

    from sqlmodel import Session, select

    from app.models import Evacuee

    from app.db import open_shelter_db
    from app.services import evacuees
    from app.services.reconcile import current_matcher, match_now
    from app.services.registry import import_registry
    from app.services.roster import EvacueeInput, import_roster, register
    from fixtures.generate import make_dataset

    with tempfile.TemporaryDirectory(prefix="anpi-matchnow-") as tmp:
        ds = make_dataset(Path(tmp) / "data", residents=args.residents, evacuees=args.evacuees + args.arrivals, seed=5,
                          encoding="utf-8", profile="anpi", roster_format="csv", snapshot_date=date(2026, 10, 31))
        engine = open_shelter_db(Path(tmp) / "shelter.db")
        import_registry(engine, ds.registry_path, as_of=date(2026, 10, 31))
        t0 = time.perf_counter()
        current_matcher(engine)
        print(f"index built once per snapshot: {time.perf_counter() - t0:.2f} s ({args.residents} residents)")
        import csv

        with ds.roster_path.open(encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        roster, arrivals = rows[:args.evacuees], rows[args.evacuees:]
        part = Path(tmp) / "roster.csv"
        with part.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(roster)
        t0 = time.perf_counter()
        res = import_roster(engine, part, by="bench")
        print(f"roster import of {res.accepted} evacuees, each matched at the end: {time.perf_counter() - t0:.2f} s")
        with Session(engine) as s:
            ids = list(s.exec(select(Evacuee.id)))
            t0 = time.perf_counter()
            match_now(s, ids)
            s.rollback()
        print(f"  of which matching {len(ids)} evacuees at once (match_now): {time.perf_counter() - t0:.2f} s")
        times, dup_times = [], []
        decided: dict[str, int] = {}
        for r in arrivals:
            data = EvacueeInput(name=r["氏名"], name_kana=r["ふりがな"], birth_date=r["生年月日"], sex=r["性別"],
                                address=r["住所"])
            t0 = time.perf_counter()
            with Session(engine, expire_on_commit=False) as s:
                evacuees.find_duplicates(s, data.name or data.name_kana, data.birth_date)
                evacuees.registrations_of(s, ["0000000000", "1111111111", "2222222222"])
            dup_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            try:
                with Session(engine, expire_on_commit=False) as s:
                    ev = register(s, data, by="bench")
                    out = match_now(s, [ev.id])
                    s.commit()
            except Exception:  # noqa: BLE001 - an unreadable row: the desk would fix it first
                continue
            times.append(time.perf_counter() - t0)
            decided[out[ev.id]] = decided.get(out[ev.id], 0) + 1
        engine.dispose()
    ms = sorted(t * 1000 for t in times)
    print(f"one arrival registered + matched + committed: p50 {statistics.median(ms):.0f} ms, "
          f"max {ms[-1]:.0f} ms over {len(ms)} ({decided})")
    dms = sorted(t * 1000 for t in dup_times)
    print(f"duplicate look-ups while typing: p50 {statistics.median(dms):.0f} ms, max {dms[-1]:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
