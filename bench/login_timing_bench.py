"""Does a wrong try take as long for an account with a PIN as for one without? (issue 12, item 5)

The 交代 screen must not tell, by its answer or its timing, which accounts could still be set up.
Prints the median time of a wrong PIN and of a wrong setup code for both kinds of account.

    python bench/login_timing_bench.py [--tries 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=30)
    args = ap.parse_args()

    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services import accounts

    engine = open_shelter_db(Path(tempfile.mkdtemp(prefix="anpi-login-bench-")) / "bench.db")
    with Session(engine, expire_on_commit=False) as s:
        with_pin = accounts.add_user(s, "暗証番号あり", "staff", "1234")
        without, _code = accounts.add_user_with_code(s, "初期設定待ち", "staff")
        legacy = accounts.add_user(s, "旧アカウント", "staff")
        s.commit()
        rows = []
        for label, user in (("PIN set", with_pin), ("setup code open", without), ("no PIN, no code", legacy)):
            pin_t, code_t = [], []
            for _ in range(args.tries):
                t = time.perf_counter()
                accounts.verify_pin(s, user, "0000")
                pin_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                accounts.set_pin(s, user, "AAAA-AAAA", "5678")
                code_t.append(time.perf_counter() - t)
            rows.append((label, statistics.median(pin_t) * 1000, statistics.median(code_t) * 1000))
    engine.dispose()
    print(f"{'account':<18}{'wrong PIN ms':>14}{'wrong code ms':>15}")
    for label, p, c in rows:
        print(f"{label:<18}{p:>14.1f}{c:>15.1f}")


if __name__ == "__main__":
    main()
