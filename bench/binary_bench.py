"""One-file binary benchmark: size, `anpi --version` time and time from exec to a 200 from /healthz.

Targets (issue 7): ≤ 100 MB and ≤ 3 s. Every run uses an empty environment (`env -i`) and a fresh
database, so the figures are what a volunteer sees on a laptop without Python. The binary is
(re)built with scripts/build-binary when it is older than the sources, or taken from ANPI_BINARY.

Usage::

    python bench/binary_bench.py              # 5 runs each
    python bench/binary_bench.py --runs 3 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.packaging.binary import ensure_binary, run, serving  # noqa: E402


def measure(runs: int) -> dict[str, float]:
    binary = ensure_binary()
    version_s, healthz_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for i in range(runs):
            t0 = time.perf_counter()
            res = run(binary, home, "--version")
            version_s.append(time.perf_counter() - t0)
            if res.returncode != 0:
                raise SystemExit(f"--version failed: {res.stderr}")
            with serving(binary, home, home / f"fresh-{i}.db") as srv:  # a fresh DB: migrations included
                healthz_s.append(srv.started_in)
    return {"size_mb": round(binary.stat().st_size / 1e6, 1),
            "version_s_median": round(statistics.median(version_s), 2), "version_s_max": round(max(version_s), 2),
            "healthz_s_median": round(statistics.median(healthz_s), 2), "healthz_s_max": round(max(healthz_s), 2),
            "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = measure(args.runs)
    if args.json:
        print(json.dumps(r))
        return
    ok = lambda good: "ok" if good else "OVER TARGET"  # noqa: E731
    print(f"binary size          {r['size_mb']:6.1f} MB   (target ≤ 100 MB: {ok(r['size_mb'] <= 100)})")
    print(f"--version            {r['version_s_median']:6.2f} s    median of {r['runs']}, max {r['version_s_max']:.2f} s")
    print(f"exec → /healthz 200  {r['healthz_s_median']:6.2f} s    median of {r['runs']}, max {r['healthz_s_max']:.2f} s "
          f"(target ≤ 3 s: {ok(r['healthz_s_median'] <= 3)})")


if __name__ == "__main__":
    main()
