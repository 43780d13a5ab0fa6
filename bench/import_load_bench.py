"""A large `anpi roster import` beside registering clients (issue 18 item 3): how long do they wait?

Runs `anpi serve` on a fresh shelter database, 4 clients registering households over HTTP (and
reading the roster between registrations), and, once they are going, a 20,000-row `anpi roster
import` as its own process. Prints each kind of request's p50 / p95 / max latency, the 5xx
answers and transport errors during the import (and, for comparison, in the seconds before it,
with the same clients and no import), and how long the import took. Target: p95 < 1 s and no 5xx.

    python bench/import_load_bench.py [--rows 20000] [--clients 4] [--code DIR] [--label after]

`--code DIR` runs another checkout's code (every process, the database is built by it too), so
the same script measures before and after:

    git worktree add /tmp/anpi-before main && python bench/import_load_bench.py --code /tmp/anpi-before --label before
    python bench/import_load_bench.py --label after
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
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import stop  # noqa: E402

SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田", "佐々木",
            "菅原", "千葉", "及川", "熊谷", "村上", "阿部", "菊地"]
GIVEN = ["一郎", "二郎", "花子", "京子", "実", "誠", "茂", "清", "勇", "明美", "和子", "洋子", "博", "隆", "健太"]


@dataclass
class Tally:
    """Latencies (s) per request kind, and what went wrong."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    status_5xx: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    lock = threading.Lock()

    def add(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)
            if status >= 500:
                self.status_5xx[status] = self.status_5xx.get(status, 0) + 1
            elif status >= 400 and len(self.other_errors) < 5:
                self.other_errors.append(f"{kind} {status}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_") or k.startswith("ANPI_ROSTER_")}
    env["PYTHONPATH"] = str(code)
    env["ANPI_SYNC_INTERVAL"] = "3600"
    return env


def anpi(code: Path, db: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "app.cli", "--db", str(db), *map(str, args)], cwd=code,
                         env=env_for(code), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise SystemExit(f"anpi {' '.join(map(str, args))} failed: {res.stderr[-2000:]}")
    return res


def write_roster(path: Path, rows: int) -> Path:
    """`rows` different people (no two share a name and a date of birth), numbered the way a desk numbers them."""
    first = date(1930, 1, 1)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        f.write("受付番号,氏名,ふりがな,生年月日,性別,住所\r\n")
        for i in range(rows):
            name = f"{SURNAMES[i % len(SURNAMES)]} {GIVEN[(i // len(SURNAMES)) % len(GIVEN)]}"
            born = first + timedelta(days=i)
            f.write(f"A-{i // 4 + 1:05d}-{i % 4 + 1},{name},,{born.year}/{born.month}/{born.day},"
                    f"{'男' if i % 2 else '女'},高田町{i % 300}\r\n")
    return path


def build(code: Path, work: Path, rows: int) -> tuple[Path, Path]:
    """A shelter database (a small registry, a staff account) built by the code under test, and the roster."""
    from fixtures.generate import make_dataset

    ds = make_dataset(work / "data", residents=3000, evacuees=0, seed=5)
    db = work / "shelter.db"
    anpi(code, db, "registry", "import", ds.registry_path, "--as-of", "2026-10-31")
    anpi(code, db, "user", "add", "--name", "受付", "--role", "staff", "--pin", "1234")
    return db, write_roster(work / "roster-20000.csv", rows)


def start_server(code: Path, db: Path, log: Path) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), "serve", "--port", str(port)],
                            cwd=code, env=env_for(code), stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"anpi serve exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("anpi serve did not answer /healthz")


def client(url: str, n: int, stop_event: threading.Event, phase: list[Tally | None]) -> None:
    """Registers one household after another and looks the person up in the roster, like a busy desk."""
    with httpx.Client(base_url=url, timeout=180) as c:
        token = c.get("/api/session").json()["csrf_token"]
        r = c.post("/api/session", json={"user": "受付", "pin": "1234"}, headers={"X-CSRF-Token": token})
        r.raise_for_status()
        token = r.json()["csrf_token"]
        i = 0
        while not stop_event.is_set():
            body = {"members": [{"name": f"来所 {n}の{i}", "name_kana": "らいしょ", "birth_date": f"19{50 + i % 40}-01-0{1 + n}",
                                 "sex": "男", "external_key": f"C{n}-{i}"}], "confirm_duplicates": True}
            for kind, call in (("POST /api/evacuees/household",
                                lambda: c.post("/api/evacuees/household", json=body, headers={"X-CSRF-Token": token})),
                               ("GET /roster", lambda: c.get("/roster", params={"q": f"来所 {n}の{i}"}))):
                tally = phase[0]  # the phase this request started in (None: not measured)
                t = time.perf_counter()
                try:
                    status = call().status_code
                except httpx.TransportError:
                    if tally:
                        tally.transport_errors += 1
                    continue
                if tally:
                    tally.add(kind, time.perf_counter() - t, status)
            i += 1


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def report(label: str, phase: str, tally: Tally) -> None:
    for kind, lat in sorted(tally.latency.items()):
        print(f"[{label}] {phase:<13} {kind:<30} {len(lat):>6} requests  p50 {1000 * pct(lat, .5):7.0f} ms  "
              f"p95 {1000 * pct(lat, .95):7.0f} ms  max {1000 * max(lat):7.0f} ms")
    every = [x for lat in tally.latency.values() for x in lat]
    verdict = "OK" if every and pct(every, .95) < 1.0 and not tally.status_5xx and not tally.transport_errors else "MISSED"
    print(f"[{label}] {phase:<13} all requests: p95 {1000 * pct(every, .95):.0f} ms, max {1000 * max(every, default=0):.0f} ms; "
          f"5xx: {tally.status_5xx or 'none'}; transport errors: {tally.transport_errors}; "
          f"other 4xx: {tally.other_errors or 'none'}  → target p95 < 1 s, no 5xx: {verdict}")


def run(code: Path, rows: int, clients: int, label: str, work: Path, idle_s: float) -> None:
    db, roster = build(code, work, rows)
    server, url = start_server(code, db, work / "serve.log")
    idle, during = Tally(), Tally()
    phase: list[Tally | None] = [None]
    stop_event = threading.Event()
    threads = [threading.Thread(target=client, args=(url, n, stop_event, phase), daemon=True) for n in range(clients)]
    try:
        for t in threads:
            t.start()
        time.sleep(2)  # the clients are logged in and registering
        phase[0] = idle  # the same clients without an import: what this machine gives anyway
        time.sleep(idle_s)
        phase[0] = during
        t0 = time.perf_counter()
        imp = anpi(code, db, "roster", "import", roster, check=False)
        import_s = time.perf_counter() - t0
        time.sleep(1)
        phase[0] = None
        stop_event.set()
        for t in threads:
            t.join(200)
    finally:
        stop(server, 20)
    said = (imp.stdout.strip() or imp.stderr.strip()).splitlines()
    print(f"[{label}] code {code}: {rows:,}-row roster import took {import_s:.1f} s (exit {imp.returncode}): "
          f"{said[0] if said else ''}")
    report(label, "no import", idle)
    report(label, "during import", during)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose code runs (default: this one)")
    ap.add_argument("--label", default="")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--idle", type=float, default=10, help="seconds measured before the import starts")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="anpi-import-load-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    run(args.code.resolve(), args.rows, args.clients, args.label or args.code.name, work, args.idle)


if __name__ == "__main__":
    main()
