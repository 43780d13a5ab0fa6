"""Hub failover bench: a PostgreSQL primary and its synchronous standby, 50 shelters syncing, the
primary's postmaster killed (-9) mid-ingest, the standby promoted; the hub on it (running all along,
refusing writes while a standby, as in compose.yaml) takes the writes.

Real pieces: two clusters made here (``initdb``, ``pg_basebackup -R``; :mod:`bench.pgcluster`), the
hub as a process (``python -m sync.hub``) on each node, connected as a plain role that row-level
security binds; the shelters are *simulated laptops* — SQLite outboxes filled through
``sync.outbox`` and pushed with the real ``sync.client.sync_once`` over real HTTP, each knowing
both hub URLs from its enrolment (``ANPI_HUB_URLS``) — not 50 ``anpi serve`` processes (2 cores).

Measures:
- ingest throughput (events/s) with the synchronous standby and without it (same hub, same
  load, ``synchronous_standby_names`` switched and reloaded between rounds);
- failover: kill -9 → the first write acknowledged to a laptop by the hub on the promoted standby
  (seconds; the laptops find it themselves, from their list of hub URLs);
- acknowledged events lost (acknowledged to a laptop before the promotion, not received by the new
  primary before it — a resend afterwards would hide a loss), duplicates at the hub, laptops converged.

Prints one JSON line: ``{"events_acknowledged", "acknowledged_lost", "duplicates", "failover_seconds",
"laptops_converged", …}``.  Usage: ``python bench/hub_failover.py [--shelters 50] [--events 60]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402
from ulid import ULID  # noqa: E402

from bench import pgcluster as pc  # noqa: E402
from bench.processes import stop  # noqa: E402
from sync import client, events as ev, models, outbox  # noqa: E402
from sync.hub import replication, store  # noqa: E402

HUB_ROLE = "anpi_hub"
STANDBY = "standby1"


# ---- the two nodes --------------------------------------------------------------------------------------
@dataclass
class Pair:
    root: Path
    archive: Path
    primary: pc.Cluster
    standby: pc.Cluster

    def hub_url_of(self, c: pc.Cluster) -> str:
        return c.url("anpi", HUB_ROLE)


def start_pair(root: Path) -> Pair:
    """Primary (WAL archive) + synchronous standby from a slot; database ``anpi`` owned by the hub role."""
    archive = root / "wal-archive"
    primary = pc.init_primary(root, archive=archive)
    primary.sql(f"CREATE ROLE {HUB_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS")
    primary.sql(f"GRANT pg_monitor TO {HUB_ROLE}")  # replication views for `anpi hub status`
    primary.sql(f"CREATE DATABASE anpi OWNER {HUB_ROLE}")
    standby = pc.make_standby(primary, root, name=STANDBY)
    pc.wait_streaming(primary, STANDBY)
    pc.set_synchronous(primary, STANDBY)
    return Pair(root, archive, primary, standby)


def start_hub(db_url: str, port: int, hub_urls: list[str], log: Path | None = None) -> subprocess.Popen:
    """``python -m sync.hub`` on ``db_url``; its output goes to ``log`` (a pipe nobody reads would
    stall the hub once full)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_")}
    env.update(PYTHONPATH=str(ROOT), ANPI_HUB_URLS=",".join(hub_urls), ANPI_HUB_CROSSMATCH="off")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "sync.hub", "--database-url", db_url, "--port", str(port)],
                            cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    stop(proc)
    raise RuntimeError(f"hub did not start: {log.read_text(errors='replace')[-2000:] if log else ''}")


# ---- simulated laptops ---------------------------------------------------------------------------------
@dataclass
class Laptop:
    name: str
    engine: Engine

    def session(self) -> Session:
        return Session(self.engine)

    def event_ids(self, acked_only: bool = False) -> set[str]:
        sql = "SELECT event_id FROM outbox_event" + (" WHERE acked_at IS NOT NULL" if acked_only else "")
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(text(sql))}

    def pending(self) -> int:
        with self.session() as s:
            return outbox.pending_count(s)


def laptop_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    models.create_all(engine)
    return engine


def enrol_laptops(tmp: Path, n: int, hub_engine: Engine, hub_url: str, prefix: str = "shelter") -> list[Laptop]:
    out = []
    for i in range(n):
        lap = Laptop(f"{prefix}{i:02d}", laptop_engine(tmp / f"{prefix}{i:02d}.db"))
        slot = store.create_enrolment(hub_engine, lap.name)
        client.enroll(lap.session, hub_url, slot.code, lap.name)
        out.append(lap)
    return out


def add_events(lap: Laptop, n: int) -> None:
    """Registrations, each followed by a check-in (the mix of a busy shelter's first hours)."""
    items: list[ev.EventPayload] = []
    at = "2025-04-01T09:00:00+09:00"
    while len(items) < n:
        eid = str(ULID())
        items.append(ev.EvacueeRegistered(evacuee_id=eid, shelter_code=lap.name, external_key=str(len(items)),
                                          name="山田 太郎", name_kana="ヤマダ タロウ", birth_date_raw="S45.3.1",
                                          sex="1", address="宮城県石巻市", household_key="H1", registered_at=at))
        items.append(ev.StayRecorded(stay_id=str(ULID()), evacuee_id=eid, kind="check_in", at=at))
    with lap.session() as s:
        outbox.append_many(s, items[:n])
        s.commit()


def sync_until_done(lap: Laptop, deadline: float, batch_size: int, hub_url: str | None = None) -> bool:
    """What a laptop's background syncer does: sync again until nothing is pending (or time is up)."""
    while time.time() < deadline:
        r = client.sync_once(lap.session, hub_url, batch_size=batch_size, pull=False, max_retries=2,
                             backoff=0.2, timeout=10)
        if r.ok:
            return True
        time.sleep(0.2)
    return False


def keep_syncing(lap: Laptop, done: threading.Event, deadline: float) -> None:
    """A laptop's background syncer during the failover: sync, and again, until told to stop and
    nothing is pending."""
    while time.time() < deadline:
        ok = sync_until_done(lap, deadline, 20)
        if ok and done.is_set():
            return
        time.sleep(0.2)


def push_round(laptops: list[Laptop], per_laptop: int, threads: int) -> tuple[int, float]:
    for lap in laptops:
        add_events(lap, per_laptop)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(lambda lap: sync_until_done(lap, time.time() + 300, 100), laptops))
    if not all(done):
        raise RuntimeError("a laptop did not finish pushing")
    return per_laptop * len(laptops), time.perf_counter() - t0


def throughput(pair: Pair, laptops: list[Laptop], per_laptop: int, rounds: int, threads: int) -> dict[str, float]:
    """Events/s with the synchronous standby and without it, rounds interleaved (later rounds meet a
    bigger table: interleaving keeps that from favouring one mode)."""
    totals = {"sync": [0, 0.0], "async": [0, 0.0]}
    for _ in range(rounds):
        for mode in ("async", "sync"):
            pc.set_synchronous(pair.primary, STANDBY if mode == "sync" else "")
            n, secs = push_round(laptops, per_laptop, threads)
            totals[mode][0] += n
            totals[mode][1] += secs
    pc.set_synchronous(pair.primary, STANDBY)
    eps = {m: round(n / s, 1) for m, (n, s) in totals.items()}
    return {"events_per_s_sync_standby": eps["sync"], "events_per_s_primary_alone": eps["async"],
            "sync_over_async": round(eps["sync"] / eps["async"], 3)}


def hub_counts(url: str) -> tuple[set[str], int, int]:
    """(event ids, rows − distinct ids, forks) held by the hub database at ``url``."""
    eng = store.open_hub_engine(url, pool_size=1)
    try:
        rows = [r[3] for r in store.held_events(eng)]  # every tenant's
        held = set(rows)
        return held, len(rows) - len(held), store.status(eng)["forks"]
    finally:
        eng.dispose()


# ---- the failover -----------------------------------------------------------------------------------------
def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def ack_times(lap: Laptop) -> list[float]:
    """When this laptop recorded each acknowledgement (epoch seconds)."""
    from datetime import timezone

    from sqlmodel import select

    with lap.session() as s:
        rows = s.exec(select(models.OutboxEvent.acked_at).where(models.OutboxEvent.acked_at.is_not(None))).all()
    return [(r if r.tzinfo else r.replace(tzinfo=timezone.utc)).timestamp() for r in rows]


def failover(pair: Pair, laptops: list[Laptop], per_laptop: int) -> dict[str, Any]:
    """Laptops push to hub A; kill -9 its primary mid-ingest; promote the standby, on which hub B
    already runs (refusing writes until now); the laptops move on to B by themselves."""
    for lap in laptops:
        add_events(lap, per_laptop)
    before = len(hub_counts(pair.hub_url_of(pair.primary))[0])
    deadline = time.time() + 240
    done = threading.Event()
    workers = [threading.Thread(target=keep_syncing, args=(lap, done, deadline), daemon=True) for lap in laptops]
    for w in workers:
        w.start()
    target = before + len(laptops) * per_laptop // 3  # a third of this round stored: mid-ingest
    watch = create_engine(pair.primary.url("anpi"), isolation_level="AUTOCOMMIT")

    def stored() -> int:
        with watch.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM hub_event")).scalar_one())

    wait_for(lambda: stored() >= target, 120)
    watch.dispose()
    t_kill = time.time()
    steps: dict[str, float] = {}
    pc.kill9(pair.primary)
    wait_for(lambda: not pc.is_up(pair.primary), 30)  # the watchdog's view: the primary is gone
    steps["detected"] = round(time.time() - t_kill, 2)
    time.sleep(0.5)  # replies already on the wire land; now no node can acknowledge (B is a standby)
    acked_before = set().union(*(lap.event_ids(acked_only=True) for lap in laptops))
    t_promote = time.time()
    pc.promote(pair.standby)
    steps["promoted"] = round(time.time() - t_kill, 2)
    for lap in laptops:  # the shelters keep registering meanwhile
        add_events(lap, 1)

    def first_ack_via_b() -> float | None:
        later = [t for lap in laptops for t in ack_times(lap) if t > t_promote]
        return min(later) if later else None

    wait_for(lambda: first_ack_via_b() is not None, 120, step=0.2)
    first = first_ack_via_b()
    done.set()
    for w in workers:
        w.join(max(0.0, deadline - time.time()))
    steps["converged"] = round(time.time() - t_kill, 2)
    # acknowledged before the promotion, but not received by the new primary before it (a resend
    # after the promotion would hide a loss, so only rows received earlier count)
    rows = pair.standby.sql("SELECT event_id FROM hub_event WHERE received_at < to_timestamp(%f)" % t_promote, "anpi")
    lost = acked_before - {r[0] for r in rows}
    return {"acknowledged_before_failover": len(acked_before), "acknowledged_lost": len(lost),
            "failover_seconds": round(first - t_kill, 2) if first else None, "killed_after_stored": target,
            "failover_steps_s": steps}


def converge_report(pair: Pair, laptops: list[Laptop]) -> dict[str, Any]:
    held, dupes, forks = hub_counts(pair.hub_url_of(pair.standby))
    union: set[str] = set()
    converged = 0
    for lap in laptops:
        mine = lap.event_ids()
        union |= mine
        if lap.pending() == 0 and lap.event_ids(acked_only=True) == mine and mine <= held:
            converged += 1
    eng = store.open_hub_engine(pair.hub_url_of(pair.standby), pool_size=1)
    status = replication.replication_status(eng)
    eng.dispose()
    return {"events_acknowledged": len(union & held), "duplicates": dupes + forks,
            "hub_holds_exactly_the_laptops_events": held == union, "laptops_converged": converged,
            "new_primary_role": status["role"], "new_primary_acks_synchronous": status["acks_synchronous"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shelters", type=int, default=50)
    p.add_argument("--events", type=int, default=60, help="events per laptop in the failover round")
    p.add_argument("--throughput-events", type=int, default=100, help="events per laptop per throughput round")
    p.add_argument("--rounds", type=int, default=2, help="throughput rounds per mode (interleaved)")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--json", action="store_true", help="only the JSON line")
    a = p.parse_args()
    print(json.dumps(run(a.shelters, a.events, a.throughput_events, a.rounds, a.threads,
                         say=(lambda *_: None) if a.json else (lambda *x: print(*x, file=sys.stderr, flush=True)))))


def run(shelters: int, events: int, throughput_events: int, rounds: int, threads: int,
        say: Callable[..., None] = lambda *_: None) -> dict[str, Any]:
    """The whole bench; returns the report (the slow test calls this with a smaller load)."""
    root = pc.workdir("anpi-failover-")
    pair: Pair | None = None
    hubs: dict[str, subprocess.Popen] = {}
    report: dict[str, Any] = {"shelters": shelters, "laptops": "simulated (sync.client over HTTP)"}
    try:
        pair = start_pair(root)
        ports = (pc.free_port(), pc.free_port())
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        hubs["a"] = start_hub(pair.hub_url_of(pair.primary), ports[0], urls, root / "hub-a.log")
        hub_engine = store.open_hub_engine(pair.hub_url_of(pair.primary), pool_size=2)
        laptops = enrol_laptops(root, shelters, hub_engine, urls[0])
        report["primary_acks_synchronous"] = replication.replication_status(hub_engine)["acks_synchronous"]
        hub_engine.dispose()
        hubs["b"] = start_hub(pair.hub_url_of(pair.standby), ports[1], urls, root / "hub-b.log")  # a standby
        say(f"{shelters} laptops enrolled; hub A on the primary, hub B on the standby, both URLs handed out")
        if rounds:
            report.update(throughput(pair, laptops, throughput_events, rounds, threads))
            say(f"throughput: {report}")
        report.update(failover(pair, laptops, events))
        say(f"failover: {report}")
        report.update(converge_report(pair, laptops))
        for lap in laptops:
            lap.engine.dispose()
        return report
    finally:
        for h in hubs.values():
            stop(h)
        if report.get("laptops_converged") != shelters:  # say why before the directory goes
            for name in ("hub-a.log", "hub-b.log"):
                if (root / name).exists():
                    say(f"--- {name} (tail)\n" + (root / name).read_text(errors="replace")[-3000:])
        pc.destroy(root, [c for c in ((pair.primary, pair.standby) if pair else ())])


if __name__ == "__main__":
    main()
