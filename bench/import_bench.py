"""Registry import benchmark: a 1,000,000-row CP932 registry through `anpi registry import`.

Prints wall time, rows/s and the peak RSS of the import process (the whole CLI process, as an
operator would run it). Target on a 2-core machine: ≤ 30 s and ≤ 1 GB.

    python bench/import_bench.py [--residents 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
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
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="reuse/keep generated data in this folder")
    args = ap.parse_args()
    from fixtures.generate import make_dataset

    work = args.keep or Path(tempfile.mkdtemp(prefix="anpi-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = make_dataset(work, residents=args.residents, evacuees=0, seed=args.seed, encoding="cp932", profile="anpi")
    gen_s = time.perf_counter() - t0
    db = work / "bench.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    size_mb = ds.registry_path.stat().st_size / 1e6
    cmd = [sys.executable, "-m", "app.cli", "--db", str(db), "registry", "import", str(ds.registry_path),
           "--encoding", "cp932", "--gaiji-map", str(ds.gaiji_map_path), "--as-of", "2026-10-31"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(proc.returncode)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"machine: {os.cpu_count()} cores; generated {args.residents:,} rows ({size_mb:.0f} MB CP932) in {gen_s:.1f}s")
    print(proc.stdout.strip())
    print(f"import wall time: {wall:.1f} s")
    print(f"rows/s: {args.residents / wall:,.0f}")
    print(f"peak RSS of the import process: {peak_mb:.0f} MB")
    print(f"database size: {db.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
