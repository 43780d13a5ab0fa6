"""Reconciliation benchmark: quality against the generator's truth, speed, memory, HTTP search latency.

    python bench/match_bench.py --residents 60000 --evacuees 6000
    python bench/match_bench.py --residents 1000000 --evacuees 10000
    python bench/match_bench.py ... --splink      # also Splink (pip install '.[bench]') on the same data
    python bench/match_bench.py ... --work DIR --reuse   # keep the generated files and the imported
                                                         # database in DIR between runs (1M takes minutes)

Prints recall@1, auto-precision, auto-resolved share of residents, non-resident false-auto rate,
review rate, the wall time and peak RSS of the whole `anpi reconcile` process, and search latency
p50/p95 over real HTTP against `anpi serve`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def anpi(db: Path, *args: str) -> tuple[float, int, str]:
    """Run the real CLI; returns wall seconds, peak RSS (MB, this child), stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "app.cli", "--db", str(db), *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"anpi {' '.join(args)} failed: {proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) // 1024, proc.stdout


def quality(db: Path, truth_path: Path) -> dict[str, float]:
    truth = {}
    with truth_path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            truth[row["evacuee_id"]] = row["resident_id"]
    con = sqlite3.connect(db)
    rows = con.execute("""
        SELECT e.external_key, d.decision, d.resident_id, d.candidates FROM evacuee e
        JOIN matchdecision d ON d.evacuee_id = e.id
        WHERE d.rowid = (SELECT MAX(rowid) FROM matchdecision WHERE evacuee_id = e.id)""").fetchall()
    con.close()
    residents = [r for r in rows if truth.get(r[0])]
    non_res = [r for r in rows if not truth.get(r[0])]
    top_ok = sum(1 for k, _d, _rid, cands in residents
                 if (c := json.loads(cands)) and c[0]["resident_id"] == truth[k])
    autos = [r for r in rows if r[1] == "auto"]
    auto_ok = sum(1 for k, _d, rid, _c in autos if truth.get(k) == rid)
    return {
        "evacuees": len(rows),
        "residents": len(residents),
        "non_residents": len(non_res),
        "recall@1": top_ok / max(1, len(residents)),
        "auto_precision": auto_ok / max(1, len(autos)),
        "auto_resolved_share": sum(1 for k, d, rid, _c in residents if d == "auto" and rid == truth[k]) / max(1, len(residents)),
        "non_resident_false_auto": sum(1 for r in non_res if r[1] == "auto") / max(1, len(non_res)),
        "review_rate": sum(1 for r in rows if r[1] == "review") / max(1, len(rows)),
        "wrong_autos": len(autos) - auto_ok,
    }


def reusable_dataset(work: Path, residents: int, evacuees: int, seed: int) -> "object | None":
    """The dataset already generated in `work` with the same size and seed, if any (`--reuse`)."""
    from fixtures.generate import Dataset

    manifest = work / "dataset.json"
    if not manifest.exists():
        return None
    m = json.loads(manifest.read_text(encoding="utf-8"))
    if (m.get("residents"), m.get("seed")) != (residents, seed) or not (work / m["roster_path"]).exists():
        return None
    if m.get("evacuees_resident", 0) + m.get("evacuees_non_resident", 0) != evacuees:
        return None
    kw = {k: v for k, v in m.items() if k in Dataset.__dataclass_fields__}
    for k in ("registry_path", "gaiji_map_path", "roster_path", "truth_path", "manifest_path"):
        kw[k] = work / m[k]
    kw["out_dir"] = work
    kw["snapshot_date"] = date.fromisoformat(m["snapshot_date"])
    kw["roster_date"] = date.fromisoformat(m["roster_date"])
    return Dataset(**kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_latency(db: Path, roster: Path, n: int = 300) -> tuple[float, float]:
    import httpx

    anpi(db, "user", "add", "--name", "bench", "--role", "staff", "--pin", "2468")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), "serve", "--port", str(port)],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(600):
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = c.get("/api/session").json()["csrf_token"]
            r = c.post("/api/session", json={"user": "bench", "pin": "2468"}, headers={"X-CSRF-Token": token})
            r.raise_for_status()
            with roster.open(encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))[1: n + 1]
            c.get("/api/search", params={"name": rows[0][1]})  # builds the index once (cold start)
            lat = []
            for row in rows:
                t0 = time.perf_counter()
                resp = c.get("/api/search", params={"name": row[1], "kana": row[2], "birth": row[3], "sex": row[4],
                                                    "address": row[5]})
                lat.append((time.perf_counter() - t0) * 1000)
                resp.raise_for_status()
        lat.sort()
        return lat[len(lat) // 2], lat[int(len(lat) * 0.95)]
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=60_000)
    ap.add_argument("--evacuees", type=int, default=6_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--splink", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="with --work: reuse the generated files, and the imported database unless --reimport")
    ap.add_argument("--reimport", action="store_true", help="with --reuse: import the reused files again")
    args = ap.parse_args()
    from fixtures.generate import make_dataset

    work = args.work or Path(tempfile.mkdtemp(prefix="anpi-match-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = reusable_dataset(work, args.residents, args.evacuees, args.seed) if args.reuse else None
    fresh = ds is None
    if ds is None:
        ds = make_dataset(work, residents=args.residents, evacuees=args.evacuees, seed=args.seed, encoding="cp932",
                          snapshot_date=date(2026, 10, 31))
    db = work / "bench.db"
    pristine = work / "imported.db"  # after registry + roster import, before any reconcile
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    if args.reuse and not fresh and not args.reimport and pristine.exists():
        shutil.copyfile(pristine, db)
        imp_s, imp_rss = float("nan"), 0
    else:
        imp_s, imp_rss, _ = anpi(db, "registry", "import", str(ds.registry_path), "--encoding", "cp932",
                                 "--gaiji-map", str(ds.gaiji_map_path), "--as-of", "2026-10-31")
        anpi(db, "roster", "import", str(ds.roster_path), "--rejects", str(work / "rejects.csv"))
        if args.reuse:
            con = sqlite3.connect(db)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            shutil.copyfile(db, pristine)
    rec_s, rec_rss, out = anpi(db, "reconcile", "--out", str(work / "reconcile.csv"))
    q = quality(db, ds.truth_path)
    print(f"machine: {os.cpu_count()} cores; registry {args.residents:,}, roster {q['evacuees']:,} "
          f"({q['residents']:,} residents, {q['non_residents']:,} non-residents)")
    print(f"registry import: {imp_s:.1f} s, peak RSS {imp_rss} MB" if imp_rss else "registry import: reused")
    print(out.strip())
    print("| metric | Anpi |")
    print("|---|---|")
    print(f"| recall@1 | {q['recall@1']:.4f} |")
    print(f"| auto-precision | {q['auto_precision']:.4f} ({q['wrong_autos']} wrong) |")
    print(f"| auto-resolved share of residents | {q['auto_resolved_share']:.4f} |")
    print(f"| non-residents wrongly auto-linked | {q['non_resident_false_auto']:.4%} |")
    print(f"| review rate | {q['review_rate']:.4f} |")
    print(f"| reconcile wall time (whole process) | {rec_s:.1f} s |")
    print(f"| reconcile peak RSS | {rec_rss} MB |")
    if not args.no_http:
        p50, p95 = search_latency(db, ds.roster_path)
        print(f"| search p50 / p95 over HTTP | {p50:.1f} / {p95:.1f} ms |")
    if args.splink:
        from bench.splink_compare import run_splink

        for line in run_splink(ds):
            print(line)


if __name__ == "__main__":
    main()
