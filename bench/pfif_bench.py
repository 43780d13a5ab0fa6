"""PFIF benchmark: import a Person Finder file of sought persons into a shelter database, link them,
relink, and export the shelter's consenting evacuees.

Sets up a shelter database (synthetic registry, a roster of evacuees, a reconciliation run), writes
a PFIF 1.4 file of `--sought` people drawn from the registry (half of them with a reading and a
date of birth, half with the name only), then prints the time of `import_pfif` (parse, store,
link), of a second import of the same file (idempotent: no new rows), of `relink_all`, and of
`export_pfif`, with the link counts.

    python bench/pfif_bench.py [--residents 60000] [--evacuees 3000] [--sought 5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# shelter databases are encrypted (SQLCipher): the runs open them with this passphrase (subprocesses too)
os.environ.setdefault("ANPI_PASSPHRASE", "bench passphrase")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=60_000)
    ap.add_argument("--evacuees", type=int, default=3_000)
    ap.add_argument("--sought", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="reuse/keep the generated database in this folder")
    args = ap.parse_args()

    from sqlalchemy import text
    from sqlmodel import Session

    from app.db import open_shelter_db, session as db_session
    from app.formats.pfif import PfifPerson, write_pfif
    from app.services.pfif import export_pfif, import_pfif, relink_all

    work = args.keep or Path(tempfile.mkdtemp(prefix="anpi-pfif-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.db"
    if not db.exists():
        from datetime import date

        from app.services.reconcile import reconcile_all
        from app.services.registry import import_registry
        from app.services.roster import import_roster
        from fixtures.generate import make_dataset

        ds = make_dataset(work / "data", residents=args.residents, evacuees=args.evacuees, seed=args.seed,
                          encoding="cp932")
        engine = open_shelter_db(db)
        import_registry(engine, ds.registry_path, encoding="cp932", gaiji_map=ds.gaiji_map_path,
                        as_of=date(2025, 3, 1))
        import_roster(engine, ds.roster_path, by="bench", pause=0)  # a new file: no one else writes
        reconcile_all(engine)
        with Session(engine) as s:
            s.execute(text("UPDATE evacuee SET consent_public = 1 WHERE rowid % 2 = 0"))
            s.commit()
        engine.dispose()
    engine = open_shelter_db(db)
    rng = random.Random(args.seed)
    with Session(engine) as s:
        rows = s.execute(text("SELECT resident_id, family_name, given_name, family_name_kana, given_name_kana, "
                              "birth_date, sex FROM resident")).all()
    t0 = datetime(2025, 3, 12, tzinfo=timezone.utc)
    persons = []
    for i, (rid, fam, giv, fk, gk, birth, sex) in enumerate(rng.sample(rows, min(args.sought, len(rows)))):
        full = i % 2 == 0
        persons.append(PfifPerson(
            f"bench.example.org/{rid}", source_date=t0, full_name=f"{fam} {giv}",
            alternate_names=f"{fk} {gk}" if full else "", date_of_birth=str(birth or "") if full else "",
            sex={"M": "male", "F": "female"}.get(sex or "", "")))
    pfif_file = work / "sought.xml"
    pfif_file.write_bytes(write_pfif(persons))
    print(f"{len(persons)} sought persons, {pfif_file.stat().st_size / 1e6:.1f} MB; registry {len(rows)} residents")

    for label in ("import", "import again"):
        t = time.perf_counter()
        with db_session(engine) as s:
            r = import_pfif(s, pfif_file, by_user="bench")
        print(f"{label:<13} {time.perf_counter() - t:6.2f}s  new {r.persons_new}, unchanged {r.persons_unchanged}, "
              f"link rows {r.link_rows}, current links: {r.linked_auto} auto, {r.linked_review} review")
    t = time.perf_counter()
    with db_session(engine) as s:
        n = relink_all(s, by_user="bench")
    print(f"{'relink':<13} {time.perf_counter() - t:6.2f}s  link rows {n}")
    t = time.perf_counter()
    with db_session(engine) as s:
        n = export_pfif(s, work / "export.xml", by_user="bench")
    print(f"{'export':<13} {time.perf_counter() - t:6.2f}s  {n} persons, {(work / 'export.xml').stat().st_size / 1e6:.1f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
