"""Sync benchmark: many shelters push their backlog concurrently to a PostgreSQL hub.

Real pieces end to end: each shelter is its own SQLite file filled through ``sync.outbox.append``;
the hub is ``python -m sync.hub`` (uvicorn) on loopback over a fresh PostgreSQL schema; shelters
push with ``sync.client.sync_once`` (signed HTTP, 500-event batches) from several client
processes at once.  Prints:

- push throughput: events/s from the first request until every shelter is fully acknowledged
  (= catch-up time of the whole backlog after the network comes back);
- pull catch-up: how long a newly enrolled shelter takes to pull the entire hub feed.

Usage::

    python bench/sync_bench.py                       # 100 shelters x 2,000 events
    python bench/sync_bench.py --shelters 10 --events 500 --json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import stop  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlmodel import Session  # noqa: E402
from ulid import ULID  # noqa: E402

from sync import client, events as ev, models, outbox  # noqa: E402
from sync.hub import store  # noqa: E402

DEFAULT_PG = os.environ.get("ANPI_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def shelter_engine(path: Path):  # noqa: ANN201
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _rec) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    models.create_all(engine)
    return engine


def make_events(rng: random.Random, code: str, n: int) -> list[ev.EventPayload]:
    """Realistic mix: 40% registrations, 35% stays, 15% decisions, 10% edits."""
    out: list[ev.EventPayload] = []
    evacuees: list[str] = []
    for i in range(n):
        r = rng.random()
        at = f"2025-01-{1 + i % 28:02d}T{i % 24:02d}:00:00+09:00"
        if r < 0.4 or not evacuees:
            eid = str(ULID())
            evacuees.append(eid)
            out.append(ev.EvacueeRegistered(
                evacuee_id=eid, shelter_code=code, external_key=str(i), name="山田 太郎", name_kana="ヤマダ タロウ",
                birth_date_raw="S45.3.1", birth_date="1970-03-01", sex="1", address="宮城県石巻市中央1-2-3",
                phone="090-1234-5678", household_key=f"H{i // 3}", care={"wheelchair": False},
                consents={"share": True}, registered_at=at))
        elif r < 0.75:
            out.append(ev.StayRecorded(stay_id=str(ULID()), evacuee_id=rng.choice(evacuees),
                                       kind=rng.choice(["check_in", "check_out"]), at=at, shelter_code=code))
        elif r < 0.9:
            out.append(ev.MatchDecided(decision_id=str(ULID()), evacuee_id=rng.choice(evacuees),
                                       resident_id=f"{rng.randint(1, 50000):08d}", decision=rng.choice(["auto", "confirmed"]),
                                       at=at, snapshot_as_of="2024-12-31", score=0.9, reasons="kana=exact"))
        else:
            out.append(ev.EvacueeUpdated(evacuee_id=rng.choice(evacuees),
                                         changes={"phone": {"old": "090-1234-5678", "new": "080-0000-0000"}}, at=at))
    return out


def fill_shelter(args: tuple[str, int, int]) -> str:
    path, n, seed = args
    engine = shelter_engine(Path(path))
    items = make_events(random.Random(seed), Path(path).stem, n)
    with Session(engine) as s:
        for e in items:
            outbox.append(s, e)
        s.commit()
    engine.dispose()
    return path


def push_worker(paths: list[str], hub_url: str, threads: int, batch: int, q: "mp.Queue") -> None:
    """One client process: several shelters syncing at once (like laptops coming back online)."""
    def one(path: str) -> tuple[int, int, bool, str | None]:
        engine = shelter_engine(Path(path))
        with httpx.Client(timeout=120) as http:
            r = client.sync_once(lambda: Session(engine), hub_url, http=http, batch_size=batch, pull=False,
                                 max_retries=8)
        engine.dispose()
        return r.acknowledged, r.pending, r.ok, r.error

    with ThreadPoolExecutor(threads) as pool:
        q.put(list(pool.map(one, paths)))


def start_hub(db_url: str, port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("ANPI_HUB_CRASH_AFTER_COMMIT", None)
    proc = subprocess.Popen([sys.executable, "-m", "sync.hub", "--database-url", db_url, "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("hub did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shelters", type=int, default=100)
    p.add_argument("--events", type=int, default=2000, help="events per shelter")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--threads", type=int, default=8, help="concurrent shelters per client process")
    p.add_argument("--hub-workers", type=int, default=1)
    p.add_argument("--port", type=int, default=18090)
    p.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL base URL (a fresh schema is created)")
    p.add_argument("--keep", action="store_true", help="keep the schema and shelter files")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = create_engine(a.pg)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    db_url = f"{a.pg}?options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="anpi-bench-"))
    hub = None
    try:
        engine = store.open_hub_engine(db_url)
        store.hub_identity(engine)
        hub = start_hub(db_url, a.port, a.hub_workers)
        hub_url = f"http://127.0.0.1:{a.port}"

        t0 = time.perf_counter()
        paths = [str(tmp / f"shelter{i:03d}.db") for i in range(a.shelters)]
        with mp.get_context("spawn").Pool(2) as pool:
            pool.map(fill_shelter, [(pth, a.events, i) for i, pth in enumerate(paths)])
        fill_s = time.perf_counter() - t0
        with httpx.Client(timeout=30) as http:
            for pth in paths:
                slot = store.create_enrolment(engine, Path(pth).stem)
                eng = shelter_engine(Path(pth))
                client.enroll(lambda: Session(eng), hub_url, slot.code, Path(pth).stem, http=http)
                eng.dispose()

        total = a.shelters * a.events
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        chunks = [paths[i::a.client_procs] for i in range(a.client_procs)]
        t0 = time.perf_counter()
        procs = [ctx.Process(target=push_worker, args=(ch, hub_url, a.threads, a.batch, q)) for ch in chunks if ch]
        for pr in procs:
            pr.start()
        results = [r for _ in procs for r in q.get()]
        for pr in procs:
            pr.join()
        push_s = time.perf_counter() - t0
        failed = [r for r in results if not r[2]]
        status = store.status(engine)

        # a laptop enrolled after the fact catches up with every other shelter's events
        late = tmp / "late.db"
        eng = shelter_engine(late)
        slot = store.create_enrolment(engine, "late")
        with httpx.Client(timeout=120) as http:
            client.enroll(lambda: Session(eng), hub_url, slot.code, "late", http=http)
            t0 = time.perf_counter()
            r = client.sync_once(lambda: Session(eng), hub_url, http=http, batch_size=2000)
            pull_s = time.perf_counter() - t0
        eng.dispose()
        report = {
            "shelters": a.shelters, "events_per_shelter": a.events, "events_total": total, "batch": a.batch,
            "client_procs": a.client_procs, "threads_per_proc": a.threads, "hub_workers": a.hub_workers,
            "fill_seconds": round(fill_s, 2),
            "push_seconds": round(push_s, 2), "push_events_per_s": round(total / push_s),
            "pull_catch_up_seconds": round(pull_s, 2), "pulled": r.pulled,
            "pull_events_per_s": round(r.pulled / pull_s) if pull_s else None,
            "hub_status": status, "failed_shelters": len(failed),
        }
        if a.json:
            print(json.dumps(report))
        else:
            print(f"filled {a.shelters} shelter DBs x {a.events} events in {fill_s:.1f}s (outbox.append)")
            print(f"push: {total} events from {a.shelters} shelters in {push_s:.1f}s = "
                  f"{total / push_s:,.0f} events/s (catch-up time of the whole backlog: {push_s:.1f}s)")
            print(f"pull catch-up: a new shelter pulled {r.pulled} events in {pull_s:.1f}s "
                  f"({r.pulled / pull_s:,.0f} events/s)")
            print(f"hub status: {json.dumps(status)}; failed shelters: {len(failed)}")
        if failed or status["events"] != total or status["forks"]:
            raise SystemExit(f"FAILED: {failed[:3]} status={status}")
        engine.dispose()
    finally:
        stop(hub)
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            with admin.begin() as c:
                c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
