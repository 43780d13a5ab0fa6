"""Reconciliation benchmark: quality against the generator's truth, speed, memory, HTTP search latency.

    python bench/match_bench.py --residents 60000 --evacuees 6000
    python bench/match_bench.py --residents 1000000 --evacuees 10000
    python bench/match_bench.py ... --splink      # also Splink (pip install '.[bench]') on the same data
    python bench/match_bench.py ... --work DIR --reuse   # keep the generated files and the imported
                                                         # database in DIR between runs (1M takes minutes)
    python bench/match_bench.py ... --compare-with REV   # the same runs with the code of git revision REV
                                                         # too (e.g. the last commit before encryption),
                                                         # printed side by side with the change in %

The shelter database is encrypted (SQLCipher): the runs use ANPI_PASSPHRASE, or a bench passphrase.

Prints recall@1, auto-precision, auto-resolved share of residents, non-resident false-auto rate,
review rate, the wall time and peak RSS of the whole `anpi reconcile` process, and search latency
p50/p95 over real HTTP against `anpi serve`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {"ANPI_PASSPHRASE": "bench passphrase", **os.environ, "PYTHONPATH": str(ROOT)}
CODE = {"root": ROOT}  # whose code the CLI runs: this checkout, or a --compare-with revision


def _env() -> dict[str, str]:
    return {**ENV, "PYTHONPATH": str(CODE["root"])}


#: runs one command and reports the peak RSS of it and its own children only: RUSAGE_CHILDREN of
#: this bench process is the largest child *so far*, so an import measured after a reconcile would
#: report the reconcile's memory (that artefact inflated earlier import figures)
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "sys.stderr.write('\\nanpi-bench-rss-kb=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.exit(r.returncode)")


def anpi(db: Path, *args: str) -> tuple[float, int, str]:
    """Run the real CLI; returns wall seconds, peak RSS (MB, this command alone), stdout."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "app.cli", "--db", str(db), *args],
                          cwd=CODE["root"], env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"anpi {' '.join(args)} failed: {proc.stderr}")
    kb = int(proc.stderr.rsplit("anpi-bench-rss-kb=", 1)[1].split()[0])
    return wall, kb // 1024, proc.stdout


def quality(db: Path, truth_path: Path) -> dict[str, float]:
    truth = {}
    with truth_path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            truth[row["evacuee_id"]] = row["resident_id"]
    con = _connect(db)
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


def _connect(db: Path):  # type: ignore[no-untyped-def]
    """The bench database, encrypted (this code) or plain (an older revision's)."""
    from app import db_crypto

    os.environ.setdefault("ANPI_PASSPHRASE", ENV["ANPI_PASSPHRASE"])
    return db_crypto.connect(db, None if db_crypto.is_plain_sqlite(db) else "")


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
                            cwd=CODE["root"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


ROWS = [
    ("database file encrypted (SQLCipher)", "encrypted", lambda v: "yes" if v else "no"),
    ("recall@1", "recall", lambda v: f"{v:.4f}"),
    ("auto-precision", "precision", lambda v: f"{v:.4f}"),
    ("wrong auto links", "wrong", lambda v: f"{v}"),
    ("review rate", "review", lambda v: f"{v:.4f}"),
    ("registry import wall time (s)", "import_s", lambda v: f"{v:.1f}"),
    ("registry import peak RSS (MB)", "import_rss", lambda v: f"{v:.0f}"),
    ("reconcile wall time, whole process (s)", "reconcile_s", lambda v: f"{v:.1f}"),
    ("reconcile peak RSS (MB)", "reconcile_rss", lambda v: f"{v:.0f}"),
    ("search p50 over HTTP (ms)", "p50", lambda v: f"{v:.1f}"),
    ("search p95 over HTTP (ms)", "p95", lambda v: f"{v:.1f}"),
]


def checkout(rev: str, work: Path) -> Path:
    """The code of git revision `rev`, unpacked once into `work` (run with this interpreter)."""
    dest = work / f"code-{rev}"
    if not (dest / "app").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def measure(ds, work: Path, args: argparse.Namespace, fresh: bool) -> dict:  # type: ignore[no-untyped-def]
    """Import, reconcile and search once with the code in CODE["root"]; the figures."""
    db = work / "bench.db"
    pristine = work / f"imported-{CODE['root'].name}.db"  # after registry + roster import, before any reconcile
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    if args.reuse and not fresh and not args.reimport and pristine.exists():
        shutil.copyfile(pristine, db)
        imp_s, imp_rss = None, None
    else:
        imp_s, imp_rss, _ = anpi(db, "registry", "import", str(ds.registry_path), "--encoding", "cp932",
                                 "--gaiji-map", str(ds.gaiji_map_path), "--as-of", "2026-10-31")
        anpi(db, "roster", "import", str(ds.roster_path), "--rejects", str(work / "rejects.csv"))
        if args.reuse:
            con = _connect(db)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            shutil.copyfile(db, pristine)
    rec_s, rec_rss, out = anpi(db, "reconcile", "--out", str(work / "reconcile.csv"))
    q = quality(db, ds.truth_path)
    from app.db_crypto import is_plain_sqlite

    res = {"encrypted": not is_plain_sqlite(db), "quality": q, "out": out, "recall": q["recall@1"], "precision": q["auto_precision"],
           "wrong": q["wrong_autos"], "review": q["review_rate"], "import_s": imp_s,
           "import_rss": float(imp_rss) if imp_rss else None, "reconcile_s": rec_s, "reconcile_rss": float(rec_rss)}
    if not args.no_http:
        res["p50"], res["p95"] = search_latency(db, ds.roster_path)
    return res


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
    ap.add_argument("--compare-with", metavar="REV",
                    help="also run with the code of this git revision and print both (e.g. before encryption)")
    args = ap.parse_args()
    from fixtures.generate import make_dataset

    work = args.work or Path(tempfile.mkdtemp(prefix="anpi-match-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = reusable_dataset(work, args.residents, args.evacuees, args.seed) if args.reuse else None
    fresh = ds is None
    if ds is None:
        ds = make_dataset(work, residents=args.residents, evacuees=args.evacuees, seed=args.seed, encoding="cp932",
                          snapshot_date=date(2026, 10, 31))
    runs = []
    if args.compare_with:
        CODE["root"] = checkout(args.compare_with, work)
        runs.append((args.compare_with, measure(ds, work, args, fresh)))
        CODE["root"] = ROOT
    runs.append(("this checkout", measure(ds, work, args, fresh)))
    q = runs[-1][1]["quality"]
    print(f"machine: {os.cpu_count()} cores; registry {args.residents:,}, roster {q['evacuees']:,} "
          f"({q['residents']:,} residents, {q['non_residents']:,} non-residents)")
    print(runs[-1][1]["out"].strip())
    print("| metric | " + " | ".join(name for name, _ in runs) + (" | change |" if len(runs) > 1 else " |"))
    print("|---|" + "---|" * (len(runs) + (len(runs) > 1)))
    for label, key, fmt in ROWS:
        vals = [r.get(key) for _, r in runs]
        if all(v is None for v in vals):
            continue
        cells = [fmt(v) if v is not None else "-" for v in vals]
        row = f"| {label} | " + " | ".join(cells) + " |"
        if len(runs) > 1:
            first, last = vals[0], vals[-1]
            change = f"{100 * (last - first) / first:+.1f} %" if isinstance(first, float) and isinstance(last, float) and first else ""
            row += f" {change} |"
        print(row)
    if args.splink:
        from bench.splink_compare import run_splink

        for line in run_splink(ds):
            print(line)


if __name__ == "__main__":
    main()
