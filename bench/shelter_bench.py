"""Small-laptop benchmark: `anpi serve` over a 60,000-resident registry.

Measures, from the moment the process is started (`python -m app.cli serve`, what the `anpi`
launcher runs):
- until `GET /healthz` answers 200,
- until the 交代 (switch user) page renders — the first screen a volunteer sees,
- until the first registry search answers (the matcher index may be built on first use),
then the peak RSS of the server process (Linux VmHWM, else the largest sample taken by psutil)
after a few searches, registrations and screens. Targets: usable UI ≤ 5 s, RSS < 1 GB.

    python bench/shelter_bench.py [--residents 60000] [--evacuees 500] [--starts 2] [--keep DIR]

The database file is in the OS page cache (it was just built); "cold" means a fresh process.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# shelter databases are encrypted (SQLCipher): the runs open them with this passphrase (subprocesses too)
os.environ.setdefault("ANPI_PASSPHRASE", "bench passphrase")

from bench.processes import stop  # noqa: E402

TARGET_START_S = 5.0
TARGET_RSS_MB = 1024.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(work: Path, residents: int, evacuees: int, seed: int) -> tuple[Path, Path]:
    """The shelter database: registry snapshot, a roster already registered, an admin and a staff account."""
    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services import accounts
    from app.services.registry import import_registry
    from app.services.roster import import_roster
    from fixtures.generate import make_dataset

    ds = make_dataset(work / "data", residents=residents, evacuees=evacuees, seed=seed)
    db = work / "shelter.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    engine = open_shelter_db(db)
    import_registry(engine, ds.registry_path, as_of=date(2026, 10, 31))
    if evacuees:
        import_roster(engine, ds.roster_path, by="bench", pause=0)  # a new file: no one else writes
    with Session(engine) as s:
        accounts.add_user(s, "受付 一郎", "staff", "1234")
        accounts.add_user(s, "管理 花子", "admin", "9999")
        s.commit()
    engine.dispose()
    return db, ds.registry_path


def people(registry: Path, n: int) -> list[dict[str, str]]:
    """Search queries as typed at intake: kanji name, kana reading, birth date of real registry rows."""
    out = []
    with registry.open(encoding="utf-8-sig", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i % 997 == 0:
                out.append({"name": f"{row['氏']} {row['名']}", "kana": f"{row['氏カナ']} {row['名カナ']}",
                            "birth": row["生年月日"]})
            if len(out) >= n:
                break
    return out


def peak_rss_mb(pid: int, samples: list[float]) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return max(samples, default=0.0)


WITHOUT_WARM_UP = "import app.cli as c; c._warm_matcher = lambda path: None; c.main()"


def one_start(db: Path, queries: list[dict[str, str]], registrations: int, tag: str, *,
              warm: bool = True) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_")}
    env["PYTHONPATH"] = str(ROOT)
    t0 = time.perf_counter()
    launcher = ["-m", "app.cli"] if warm else ["-c", WITHOUT_WARM_UP]
    log = db.with_name(f"serve-{tag}.log")
    proc = subprocess.Popen([sys.executable, *launcher, "--db", str(db), "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    ps = psutil.Process(proc.pid)
    samples: list[float] = []
    figures: dict[str, float] = {}
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"anpi serve exited: {log.read_text(errors='replace')[-3000:]}")
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.02)
            figures["healthz_s"] = time.perf_counter() - t0
            figures["healthz_cpu_s"] = sum(ps.cpu_times()[:2])
            page = c.get("/switch")
            assert page.status_code == 200 and "交代" in page.text, page.status_code
            figures["switch_page_s"] = time.perf_counter() - t0
            token = c.get("/api/session").json()["csrf_token"]
            r = c.post("/api/session", json={"user": "受付 一郎", "pin": "1234"}, headers={"X-CSRF-Token": token})
            r.raise_for_status()
            token = r.json()["csrf_token"]
            first = c.get("/api/search", params=queries[0])
            first.raise_for_status()
            figures["first_search_s"] = time.perf_counter() - t0
            figures["first_search_cpu_s"] = sum(ps.cpu_times()[:2])
            samples.append(ps.memory_info().rss / 2**20)
            lat = []
            for q in queries[1:]:
                t = time.perf_counter()
                c.get("/api/search", params=q).raise_for_status()
                lat.append(time.perf_counter() - t)
                samples.append(ps.memory_info().rss / 2**20)
            for i in range(registrations):
                body = {"members": [{"name": f"試験 {i}郎", "name_kana": "しけん", "birth_date": "1980-01-01",
                                     "sex": "男", "external_key": f"B{tag}{i:04d}"}], "confirm_duplicates": True}
                c.post("/api/evacuees/household", json=body, headers={"X-CSRF-Token": token}).raise_for_status()
                samples.append(ps.memory_info().rss / 2**20)
            for path in ("/dashboard", "/roster", "/intake"):
                c.get(path).raise_for_status()
            samples.append(ps.memory_info().rss / 2**20)
            lat.sort()
            figures["search_median_ms"] = 1000 * lat[len(lat) // 2] if lat else 0.0
            figures["search_max_ms"] = 1000 * lat[-1] if lat else 0.0
            figures["rss_now_mb"] = ps.memory_info().rss / 2**20
            figures["rss_peak_mb"] = peak_rss_mb(proc.pid, samples)
    except Exception:
        print(f"server log ({log}):\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        stop(proc, 20)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residents", type=int, default=60_000)
    ap.add_argument("--evacuees", type=int, default=500, help="roster registered before the measurement")
    ap.add_argument("--searches", type=int, default=20)
    ap.add_argument("--registrations", type=int, default=20)
    ap.add_argument("--starts", type=int, default=2, help="how many fresh server processes to measure")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="build the data in this folder and keep it")
    ap.add_argument("--no-warm", action="store_true",
                    help="for comparison: without the start-up warm-up of the registry index (built at the first search)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="anpi-shelter-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if (work / "shelter.db").exists() and args.keep:  # reuse a kept database as it is
        db, registry = work / "shelter.db", work / "data" / "registry.csv"
    else:
        db, registry = build(work, args.residents, args.evacuees, args.seed)
    build_s = time.perf_counter() - t
    queries = people(registry, args.searches + 1)
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GB RAM, "
          f"load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    print(f"database: {args.residents:,} residents, {args.evacuees} evacuees, {db.stat().st_size / 1e6:.0f} MB "
          f"(built in {build_s:.0f} s)")
    runs = [one_start(db, queries, args.registrations, f"{time.time_ns()}-{i}", warm=not args.no_warm)
            for i in range(args.starts)]
    for i, f in enumerate(runs, 1):
        print(f"start {i}: /healthz 200 after {f['healthz_s']:.2f} s; 交代 page after {f['switch_page_s']:.2f} s; "
              f"first search answer after {f['first_search_s']:.2f} s "
              f"(server CPU time used by then: {f['healthz_cpu_s']:.2f} s / {f['first_search_cpu_s']:.2f} s)")
        print(f"         then {args.searches} searches (median {f['search_median_ms']:.0f} ms, max "
              f"{f['search_max_ms']:.0f} ms), {args.registrations} registrations, 3 screens; "
              f"RSS now {f['rss_now_mb']:.0f} MB, peak {f['rss_peak_mb']:.0f} MB")
    worst_ui = max(f["switch_page_s"] for f in runs)
    worst_search = max(f["first_search_s"] for f in runs)
    worst_rss = max(f["rss_peak_mb"] for f in runs)
    print(f"cold start to usable UI (交代 page): {worst_ui:.2f} s (target ≤ {TARGET_START_S:.0f} s: "
          f"{'ok' if worst_ui <= TARGET_START_S else 'MISSED'})")
    print(f"cold start to first search answer: {worst_search:.2f} s (target ≤ {TARGET_START_S:.0f} s: "
          f"{'ok' if worst_search <= TARGET_START_S else 'MISSED'})")
    print(f"peak RSS of the server: {worst_rss:.0f} MB (target < {TARGET_RSS_MB:.0f} MB: "
          f"{'ok' if worst_rss < TARGET_RSS_MB else 'MISSED'})")


if __name__ == "__main__":
    main()
