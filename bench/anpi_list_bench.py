"""安否確認リスト benchmark: build the list of a 60,000-resident snapshot and export it.

Sets up a shelter database (synthetic CP932 registry with gaiji, a roster of evacuees, a
reconciliation run, a few HQ records), then prints the time of `build_anpi_list` (target: a
couple of seconds) and of each export format, with row and replacement counts.

    python bench/anpi_list_bench.py [--residents 60000] [--evacuees 3000] [--keep DIR] [--formats csv,cp932,xlsx,pdf]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# shelter databases are encrypted (SQLCipher): the runs open them with this passphrase (subprocesses too)
os.environ.setdefault("ANPI_PASSPHRASE", "bench passphrase")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=60_000)
    ap.add_argument("--evacuees", type=int, default=3_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="reuse/keep the generated database in this folder")
    ap.add_argument("--formats", default="csv,cp932,xlsx,pdf")
    args = ap.parse_args()

    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services.anpi_list import build_anpi_list, export_anpi_list, record_hq_confirmation

    work = args.keep or Path(tempfile.mkdtemp(prefix="anpi-list-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.db"
    if not db.exists():
        from datetime import date

        from app.services.reconcile import reconcile_all
        from app.services.registry import import_registry
        from app.services.roster import import_roster
        from fixtures.generate import make_dataset

        t0 = time.perf_counter()
        ds = make_dataset(work / "data", residents=args.residents, evacuees=args.evacuees, seed=args.seed,
                          encoding="cp932")
        engine = open_shelter_db(db)
        import_registry(engine, ds.registry_path, encoding="cp932", gaiji_map=ds.gaiji_map_path,
                        as_of=date(2025, 3, 1))
        import_roster(engine, ds.roster_path, by="bench", pause=0)  # a new file: no one else writes
        reconcile_all(engine)
        with Session(engine) as s:
            from sqlalchemy import text

            ids = [r[0] for r in s.execute(text("SELECT resident_id FROM resident ORDER BY id LIMIT 300"))]
            for i, rid in enumerate(ids):
                record_hq_confirmation(s, rid, ("confirmed_other", "missing", "dead")[i % 3], "電話", "", by="bench")
            s.commit()
        engine.dispose()
        print(f"set-up (generate, import, roster, reconcile): {time.perf_counter() - t0:.1f} s")

    engine = open_shelter_db(db)
    print(f"machine: {os.cpu_count()} cores")
    with Session(engine) as s:
        for attempt in (1, 2):
            t0 = time.perf_counter()
            lst = build_anpi_list(s)
            print(f"build_anpi_list #{attempt}: {time.perf_counter() - t0:.2f} s for {lst.total_residents:,} residents "
                  f"({len(lst.rows):,} rows, {lst.restricted_excluded} 閲覧制限 left out); counts {lst.counts}")
        for fmt in args.formats.split(","):
            enc = "cp932" if fmt == "cp932" else "utf-8-sig"
            real = "csv" if fmt == "cp932" else fmt
            out = work / f"anpi-list.{fmt}.{real}"
            t0 = time.perf_counter()
            o = export_anpi_list(s, out, fmt=real, encoding=enc, by="bench")
            s.commit()
            took = time.perf_counter() - t0
            print(f"export {fmt:>5}: {took:6.1f} s (list included)  {o.rows:,} rows  "
                  f"{len(o.result.replacements) if o.result else 0} replacements  {out.stat().st_size / 1e6:.1f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
