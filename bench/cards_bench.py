"""避難者カード and 掲示用名簿: what printing and checking cost on a shelter laptop.

Registers N evacuees in a fresh encrypted shelter file, prints all their cards into one PDF (A6
and 62 mm label), verifies every QR text as the scan desk does, and writes the noticeboard PDF.
Prints seconds and per-card figures; nothing is asserted (targets: a household's cards well under
a second, a scan check in milliseconds).

    python bench/cards_bench.py [--evacuees 300]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--evacuees", type=int, default=300)
    args = ap.parse_args()
    os.environ.setdefault("ANPI_PASSPHRASE", "bench")
    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services import card_keys, cards, noticeboard
    from app.services.roster import EvacueeInput, register

    with tempfile.TemporaryDirectory() as tmp:
        engine = open_shelter_db(Path(tmp) / "bench.db")
        with Session(engine) as s:
            ids = [register(s, EvacueeInput(name=f"試験 {i}郎", name_kana=f"シケン {i}", birth_date="1970-01-01",
                                            sex="男", address=f"岩手県陸前高田市高田町{i % 9 + 1}-2",
                                            consent_public=True), by="bench").id for i in range(args.evacuees)]
            s.commit()
            for size in ("a6", "label62"):
                t = time.perf_counter()
                printed = cards.print_cards(s, ids, size=size)
                dt = time.perf_counter() - t
                print(f"print {len(ids)} cards ({size}): {dt:.2f} s, {dt / len(ids) * 1000:.1f} ms/card, "
                      f"{len(printed.pdf) / 1024:.0f} KiB")
            faces, _, _ = cards.card_faces(s, ids)
            t = time.perf_counter()
            for f in faces:
                card_keys.verify(s, f.qr_text)
            dt = time.perf_counter() - t
            print(f"verify {len(faces)} cards: {dt / len(faces) * 1000:.2f} ms/card")
            t = time.perf_counter()
            _, data = noticeboard.export(s, fmt="pdf", by="bench")
            print(f"noticeboard pdf, {args.evacuees} people: {time.perf_counter() - t:.2f} s, {len(data) / 1024:.0f} KiB")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
