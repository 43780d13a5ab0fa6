"""Request latency while another process writes: `anpi serve` beside a large `anpi roster import`.

Four clients register households (POST /api/evacuees/household) and two read screens
(GET /dashboard and /api/status, which show nobody, and GET /roster, a look that writes its audit
entry) against a real `anpi serve` process, first on a quiet database, then while
`anpi roster import` of a large roster runs in a second process (what held the write lock for
~60 s in issue 18). Prints p50 / p95 / max per request kind and phase, and the answers that were
not 2xx (503 = "busy, try again", 5xx other than 503/507 = a bug).

    python bench/write_load_bench.py [--roster 20000] [--residents 5000] [--quiet-seconds 10]
                                     [--app-root PATH] [--busy-timeout 10] [--keep DIR]

`--app-root` runs the server and the import from another checkout (e.g. the main branch) on the
same data, for a before/after figure; the bench itself needs only httpx and this repository's
fixtures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import stop  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(work: Path, residents: int, roster: int, app_root: Path) -> tuple[Path, Path]:
    """A shelter database (registry snapshot, a staff and an admin account) built by `app_root`'s code,
    and the roster file to import during the measurement."""
    from fixtures.generate import make_dataset

    ds = make_dataset(work / "data", residents=residents, evacuees=roster, seed=18)
    db = work / "shelter.db"
    code = ("import sys; from datetime import date; from sqlmodel import Session; "
            "from app.db import open_shelter_db; from app.services import accounts; "
            "from app.services.registry import import_registry; "
            "e = open_shelter_db(sys.argv[1]); import_registry(e, sys.argv[2], as_of=date(2026, 10, 31)); "
            "s = Session(e); accounts.add_user(s, '受付', 'staff', '1234'); accounts.add_user(s, '管理', 'admin', '9999'); "
            "s.commit(); s.close(); e.dispose()")
    subprocess.run([sys.executable, "-c", code, str(db), str(ds.registry_path)], cwd=app_root, env=env(app_root),
                   check=True)
    return db, ds.roster_path


def env(app_root: Path, busy_timeout: float | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_")}
    e["PYTHONPATH"] = str(app_root)
    e["ANPI_SYNC_INTERVAL"] = "3600"
    if busy_timeout is not None:
        e["ANPI_BUSY_TIMEOUT_SECONDS"] = str(busy_timeout)
    return e


class Recorder:
    """(phase, kind) → latencies and status codes, shared by the client threads."""

    def __init__(self) -> None:
        self.phase = "quiet"
        self.lock = threading.Lock()
        self.lat: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.codes: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)

    def add(self, kind: str, seconds: float, code: int) -> None:
        with self.lock:
            self.lat[(self.phase, kind)].append(seconds)
            self.codes[(self.phase, kind)][code] += 1


def logged_in(url: str, name: str, pin: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=url, timeout=120)
    token = c.get("/api/session").json()["csrf_token"]
    r = c.post("/api/session", json={"user": name, "pin": pin}, headers={"X-CSRF-Token": token})
    r.raise_for_status()
    return c, r.json()["csrf_token"]


def registering(url: str, n: int, rec: Recorder, stop_: threading.Event) -> None:
    c, token = logged_in(url, "受付", "1234")
    i = 0
    while not stop_.is_set():
        body = {"members": [{"name": f"負荷 {n}-{i}", "name_kana": "ふか", "birth_date": "1980-01-01", "sex": "男",
                             "external_key": f"B{n}-{i}"}], "confirm_duplicates": True}
        t = time.perf_counter()
        try:
            code = c.post("/api/evacuees/household", json=body, headers={"X-CSRF-Token": token}).status_code
        except httpx.TransportError:
            code = 0
        rec.add("register", time.perf_counter() - t, code)
        i += 1
        time.sleep(0.05)
    c.close()


def reading(url: str, rec: Recorder, stop_: threading.Event) -> None:
    c, _ = logged_in(url, "管理", "9999")
    paths = [("dashboard", "/dashboard"), ("status", "/api/status"), ("roster look", "/roster")]
    i = 0
    while not stop_.is_set():
        kind, path = paths[i % len(paths)]
        t = time.perf_counter()
        try:
            code = c.get(path).status_code
        except httpx.TransportError:
            code = 0
        rec.add(kind, time.perf_counter() - t, code)
        i += 1
        time.sleep(0.05)
    c.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def report(rec: Recorder, label: str) -> None:
    print(f"\n{label}")
    print(f"{'phase':<15}{'request':<13}{'n':>6}{'p50 s':>9}{'p95 s':>9}{'max s':>9}  answers")
    for (phase, kind), lat in sorted(rec.lat.items()):
        codes = ", ".join(f"{k}×{v}" for k, v in sorted(rec.codes[(phase, kind)].items()))
        print(f"{phase:<15}{kind:<13}{len(lat):>6}{pct(lat, 50):>9.3f}{pct(lat, 95):>9.3f}{max(lat):>9.3f}  {codes}")
    for phase in sorted({p for p, _ in rec.lat}):
        reads = [x for (p, k), v in rec.lat.items() if p == phase and k != "register" for x in v]
        writes = [x for (p, k), v in rec.lat.items() if p == phase and k == "register" for x in v]
        bad = sum(n for (p, _), c in rec.codes.items() if p == phase for code, n in c.items()
                  if code >= 500 and code not in (503, 507) or code == 0)
        print(f"{phase}: read p95 {pct(reads, 95):.3f} s, register p95 {pct(writes, 95):.3f} s, "
              f"bare 5xx / dropped {bad}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roster", type=int, default=20_000)
    ap.add_argument("--residents", type=int, default=5_000)
    ap.add_argument("--quiet-seconds", type=float, default=10)
    ap.add_argument("--app-root", type=Path, default=ROOT)
    ap.add_argument("--busy-timeout", type=float, default=None, help="ANPI_BUSY_TIMEOUT_SECONDS for the server")
    ap.add_argument("--keep", type=Path, default=None)
    a = ap.parse_args()
    app_root = a.app_root.resolve()
    with tempfile.TemporaryDirectory(prefix="anpi-write-bench-") as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db, roster = build(work, a.residents, a.roster, app_root)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), "serve", "--port", str(port)],
                                  cwd=app_root, env=env(app_root, a.busy_timeout), stdout=subprocess.DEVNULL,
                                  stderr=(work / "serve.log").open("wb"))
        importer = None
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("anpi serve did not start: " + (work / "serve.log").read_text(errors="replace"))
                time.sleep(0.1)
            rec, stop_ = Recorder(), threading.Event()
            threads = [threading.Thread(target=registering, args=(url, n, rec, stop_)) for n in range(4)]
            threads += [threading.Thread(target=reading, args=(url, rec, stop_)) for _ in range(2)]
            for t in threads:
                t.start()
            time.sleep(a.quiet_seconds)
            rec.phase = "during import"
            t0 = time.perf_counter()
            importer = subprocess.run([sys.executable, "-m", "app.cli", "--db", str(db), "roster", "import",
                                       str(roster)], cwd=app_root, env=env(app_root), capture_output=True, text=True)
            took = time.perf_counter() - t0
            stop_.set()
            for t in threads:
                t.join(180)
        finally:
            stop(server)
        print(f"app: {app_root}  roster import of {a.roster} rows: {took:.1f} s, exit {importer.returncode}: "
              f"{(importer.stdout or importer.stderr).strip().splitlines()[:1]}")
        report(rec, "latency by phase (4 registering clients, 2 reading clients)")


if __name__ == "__main__":
    main()
