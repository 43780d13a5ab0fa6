"""Municipal-cloud hub benchmark: many municipalities, their registry backups, shelters syncing, and
evacuees found across town lines.

Real pieces end to end: one registry per municipality from the fixtures generator (its fictional
三陸浜市 renamed per municipality), imported at the hub with ``anpi hub registry import``'s code path
(shelter checks, sealed at rest); every municipality shares its registry with its next two
neighbours; shelter laptops are SQLite outboxes filled through ``sync.outbox.append`` and push
with ``sync.client.sync_once`` (signed HTTP) to ``python -m sync.hub`` on PostgreSQL — connected
as a plain role that row-level security binds, exactly as production.  Each municipality's roster
(with the generator's truth) is spread over its own shelters, and a share of it (``--cross``) over
its neighbours' shelters, where the host's laptop could not match them (decision ``none``).

Prints:
- push throughput (events/s) of every shelter's backlog, and how long the hub then needs to finish
  the cross-town matching it queued;
- latency: a resident of one town registers at another town's shelter → that resident appears as
  safe to the home HQ (``/v1/hq/status``), per probe (p50 / p95 / max);
- cross-municipal match quality against the generator's truth: auto precision, residents
  auto-resolved, sent to review, non-residents wrongly auto-linked.

Usage::

    python bench/hub_bench.py                                   # quick: 3 towns, 6,000 residents, 6 shelters
    python bench/hub_bench.py --municipalities 30 --residents 2000000 --shelters 300 --evacuees 2000
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# shelter databases are encrypted (SQLCipher): the runs open them with this passphrase (subprocesses too)
os.environ.setdefault("ANPI_PASSPHRASE", "bench passphrase")

from bench.processes import stop  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import Session  # noqa: E402
from ulid import ULID  # noqa: E402

from sync import client, events as ev, models, outbox  # noqa: E402
from sync.hub import registry, store, tenants  # noqa: E402

DEFAULT_PG = os.environ.get("ANPI_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROLE = "anpi_hub_bench"


# ---- towns ---------------------------------------------------------------------------------------
def town_code(i: int) -> str:
    five = f"03{300 + i:03d}"
    return five + tenants.check_digit(five)


def town_name(i: int) -> str:
    return f"三陸{i:02d}町"


def make_town(args: tuple[int, int, int, str]) -> dict[str, Any]:
    from fixtures.generate import make_dataset

    i, residents, evacuees, out = args
    t0 = time.perf_counter()
    ds = make_dataset(Path(out) / town_code(i), residents=residents, evacuees=evacuees, seed=f"hub-bench-{i}")
    for p in (ds.registry_path, ds.roster_path):
        p.write_text(p.read_text(encoding="utf-8-sig").replace("三陸浜市", town_name(i)), encoding="utf-8")
    return {"i": i, "registry": str(ds.registry_path), "roster": str(ds.roster_path), "truth": str(ds.truth_path),
            "seconds": time.perf_counter() - t0}


def import_town(args: tuple[str, str, str, str]) -> tuple[str, float, int]:
    from app.hub_registry import store_at_hub

    url, key_text, code, path = args
    engine = store.open_hub_engine(url, pool_size=2)
    t0 = time.perf_counter()
    info = store_at_hub(engine, registry.DataKey.from_text(key_text), code, Path(path), imported_by="bench")
    engine.dispose()
    return code, time.perf_counter() - t0, info.row_count


# ---- shelters ------------------------------------------------------------------------------------
def shelter_engine(path: Path):  # noqa: ANN201
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _rec) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    models.create_all(engine)
    return engine


def registration(eid: str, shelter: str, row: dict[str, str], household: str, at: str) -> ev.EvacueeRegistered:
    return ev.EvacueeRegistered(evacuee_id=eid, shelter_code=shelter, external_key=row["受付番号"],
                                name=row["氏名"] or None, name_kana=row["ふりがな"] or None,
                                birth_date_raw=row["生年月日"] or None, sex=row["性別"] or None,
                                address=row["住所"] or None, phone=row["電話番号"] or None, household_key=household,
                                registered_at=at)


def fill_shelter(args: tuple[str, list[tuple[str, dict[str, Any]]]]) -> str:
    path, items = args
    engine = shelter_engine(Path(path))
    with Session(engine) as s:
        outbox.append_many(s, [ev.EVENT_TYPES[typ].from_dict(payload) for typ, payload in items])
        s.commit()
    engine.dispose()
    return path


def push_worker(paths: list[str], hub_url: str, threads: int, q: "mp.Queue") -> None:
    def one(path: str) -> tuple[int, bool, str | None]:
        engine = shelter_engine(Path(path))
        with httpx.Client(timeout=300) as http:
            # link_batch: fixed 500-event batches as before wire v2, so this measures the hub's ingest,
            # not the adaptive batch growth meant for slow links (bench/link_bench.py measures that)
            r = client.sync_once(lambda: Session(engine), hub_url, http=http, batch_size=500, link_batch=500, pull=False,
                                 max_retries=8)
        engine.dispose()
        return r.acknowledged, r.ok, r.error

    with ThreadPoolExecutor(threads) as pool:
        q.put(list(pool.map(one, paths)))


def start_matcher(db_url: str, key_text: str, cache: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANPI_HUB_DATA_KEY=key_text, ANPI_HUB_MATCHER_CACHE=str(cache),
               ANPI_HUB_RECORDS_CACHE=str(cache), ANPI_HUB_DATABASE_URL=db_url)
    return subprocess.Popen([sys.executable, "-m", "app.cli", "hub", "crossmatch", "run", "--watch",
                             "--interval", "0.05"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


def start_hub(db_url: str, port: int, key_text: str, cache: int, inline: bool = True) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANPI_HUB_DATA_KEY=key_text, ANPI_HUB_MATCHER_CACHE=str(cache),
               ANPI_HUB_RECORDS_CACHE=str(cache), ANPI_HUB_CROSSMATCH="inline" if inline else "off")
    proc = subprocess.Popen([sys.executable, "-m", "sync.hub", "--database-url", db_url, "--port", str(port)],
                            cwd=ROOT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("hub did not start")


def ensure_role(admin: Any) -> None:
    with admin.begin() as c:
        if c.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE}).first() is None:
            c.execute(text(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT"))


def new_schema(pg: str, prefix: str) -> tuple[str, str, str]:
    """A private schema for one run: (name, superuser URL, URL of the confined hub role), both
    with that schema as search_path (row-level security binds the hub role as in production)."""
    schema = prefix + uuid.uuid4().hex[:8]
    admin = create_engine(pg)
    ensure_role(admin)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
        c.execute(text(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {ROLE}"))
    admin.dispose()
    path = f"?options=-csearch_path%3D{schema}"
    return schema, pg + path, make_url(pg).set(username=ROLE).render_as_string(hide_password=False) + path


def drop_schema(pg: str, schema: str) -> None:
    eng = create_engine(pg)
    with eng.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    eng.dispose()


def pending_jobs(admin: Any) -> int:
    with admin.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM hub_crossmatch_job WHERE status = 'pending'")).scalar())


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


# ---- main ----------------------------------------------------------------------------------------
def main() -> None:  # noqa: C901 - one linear script
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--municipalities", type=int, default=3)
    p.add_argument("--residents", type=int, default=6000, help="residents in total (split evenly)")
    p.add_argument("--shelters", type=int, default=6, help="shelters in total (split evenly)")
    p.add_argument("--evacuees", type=int, default=200, help="roster rows per municipality")
    p.add_argument("--cross", type=float, default=0.1, help="share of each roster registered in a neighbour town")
    p.add_argument("--probes", type=int, default=10, help="latency probes (one at a time)")
    p.add_argument("--neighbours", type=int, default=2, help="each town shares with this many next towns (0: none)")
    p.add_argument("--matcher-process", action="store_true",
                   help="match in a separate `anpi hub crossmatch run --watch` process instead of inside the hub")
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--port", type=int, default=18190)
    p.add_argument("--pg", default=DEFAULT_PG)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    M = a.municipalities
    rng = random.Random(a.seed)
    report: dict[str, Any] = {"municipalities": M, "residents": a.residents, "shelters": a.shelters,
                              "evacuees_per_municipality": a.evacuees, "cross_share": a.cross}
    say = (lambda *x: None) if a.json else (lambda *x: print(*x, flush=True))

    schema, admin_url, url = new_schema(a.pg, "hubbench_")
    admin = create_engine(admin_url)
    tmp = Path(tempfile.mkdtemp(prefix="anpi-hubbench-"))
    key = registry.DataKey.generate()
    hub = matcher = None
    ctx = mp.get_context("spawn")
    try:
        # 1. registries
        t0 = time.perf_counter()
        per = a.residents // M
        with ctx.Pool(2) as pool:
            towns = sorted(pool.map(make_town, [(i, per, a.evacuees, str(tmp)) for i in range(M)]),
                           key=lambda t: t["i"])
        report["generate_seconds"] = round(time.perf_counter() - t0, 1)
        say(f"generated {M} registries x {per:,} residents (+ rosters of {a.evacuees}) in {report['generate_seconds']}s")
        engine = store.open_hub_engine(url)
        store.hub_identity(engine)
        tokens = {}
        for i in range(M):
            tenants.add_municipality(engine, town_code(i), town_name(i), actor="bench")
            tokens[town_code(i)] = tenants.add_user(engine, town_code(i), "hq", "hq", actor="bench")[1]
        t0 = time.perf_counter()
        with ctx.Pool(2) as pool:
            imported = pool.map(import_town, [(url, key.to_text(), town_code(t["i"]), t["registry"]) for t in towns])
        report["registry_import_seconds"] = round(time.perf_counter() - t0, 1)
        report["registry_rows"] = sum(n for _, _, n in imported)
        say(f"hub registry import: {report['registry_rows']:,} rows of {M} municipalities, sealed, in "
            f"{report['registry_import_seconds']}s ({report['registry_rows'] / (time.perf_counter() - t0):,.0f} rows/s)")
        for i in range(M):  # each town shares its registry with its next two neighbours
            for d in range(1, a.neighbours + 1):
                if M > d:
                    tenants.share(engine, town_code(i), town_code((i + d) % M), actor="bench")

        # 2. shelters and their backlogs
        shelters_of: dict[int, list[str]] = {i: [] for i in range(M)}
        for s in range(a.shelters):
            shelters_of[s % M].append(str(tmp / f"shelter{s:03d}-{town_code(s % M)}.db"))
        backlog: dict[str, list[tuple[str, dict[str, Any]]]] = {pth: [] for pths in shelters_of.values() for pth in pths}
        truth_of: dict[str, dict[str, str]] = {}  # evacuee id -> truth (+ home, host)
        on_rosters: set[str] = set()  # 宛名番号 of everyone on a roster (probes pick others)
        for t in towns:
            i = t["i"]
            with open(t["roster"], encoding="utf-8") as fh:
                roster = list(csv.DictReader(fh))
            with open(t["truth"], encoding="utf-8") as fh:
                truth = {r["evacuee_id"]: r for r in csv.DictReader(fh)}
            for row in roster:
                tr = truth.get(row["受付番号"])
                if tr is None:
                    continue
                on_rosters.add(tr["resident_id"])
                cross = M > 1 and a.neighbours > 0 and rng.random() < a.cross
                host = (i + rng.randint(1, min(a.neighbours, M - 1))) % M if cross else i
                shelter = rng.choice(shelters_of[host])
                eid = str(ULID())
                at = f"2025-04-{1 + rng.randrange(20):02d}T{rng.randrange(24):02d}:00:00+09:00"
                items = backlog[shelter]
                items.append(("evacuee.registered", registration(eid, Path(shelter).stem, row,
                                                                  f"{town_code(i)}-{tr['group']}", at).to_dict()))
                items.append(("stay.recorded", ev.StayRecorded(stay_id=str(ULID()), evacuee_id=eid, kind="check_in",
                                                               at=at).to_dict()))
                local_hit = not cross and tr["category"] == "resident" and tr["resident_id"]
                items.append(("match.decided", ev.MatchDecided(
                    decision_id=str(ULID()), evacuee_id=eid, resident_id=tr["resident_id"] if local_hit else None,
                    decision="auto" if local_hit else "none", at=at).to_dict()))
                if rng.random() < 0.2:
                    items.append(("stay.recorded", ev.StayRecorded(stay_id=str(ULID()), evacuee_id=eid,
                                                                   kind="check_out", at=at[:11] + "23:59:00+09:00")
                                  .to_dict()))
                if cross:
                    truth_of[eid] = {**tr, "home": town_code(i), "host": town_code(host)}
        total_events = sum(len(v) for v in backlog.values())
        t0 = time.perf_counter()
        with ctx.Pool(2) as pool:
            pool.map(fill_shelter, list(backlog.items()))
        say(f"filled {a.shelters} shelter outboxes with {total_events:,} events in {time.perf_counter() - t0:.1f}s; "
            f"{len(truth_of):,} evacuees registered in a neighbour town")

        # 3. the hub, enrolment
        hub = start_hub(url, a.port, key.to_text(), max(4, min(M, 30)), inline=not a.matcher_process)
        if a.matcher_process:
            matcher = start_matcher(url, key.to_text(), max(4, min(M, 30)))
        report["matching"] = "separate process" if a.matcher_process else "inside the hub process"
        hub_url = f"http://127.0.0.1:{a.port}"
        with httpx.Client(timeout=60) as http:
            for i, pths in shelters_of.items():
                for pth in pths:
                    slot = store.create_enrolment(engine, Path(pth).stem, town_code(i))
                    eng = shelter_engine(Path(pth))
                    client.enroll(lambda: Session(eng), hub_url, slot.code, Path(pth).stem, http=http)
                    eng.dispose()

        # 4. everyone pushes at once
        q: mp.Queue = ctx.Queue()
        paths = list(backlog)
        chunks = [paths[k::a.client_procs] for k in range(a.client_procs)]
        t0 = time.perf_counter()
        procs = [ctx.Process(target=push_worker, args=(ch, hub_url, a.threads, q)) for ch in chunks if ch]
        for pr in procs:
            pr.start()
        results = [r for _ in procs for r in q.get()]
        for pr in procs:
            pr.join()
        push_s = time.perf_counter() - t0
        failed = [r for r in results if not r[1]]
        report.update(events=total_events, push_seconds=round(push_s, 1), events_per_s=round(total_events / push_s),
                      failed_shelters=len(failed))
        say(f"push: {total_events:,} events from {a.shelters} shelters in {push_s:.1f}s = "
            f"{total_events / push_s:,.0f} events/s (failed shelters: {len(failed)})")
        while pending_jobs(admin):
            if time.perf_counter() - t0 > 3600:
                raise SystemExit("cross-town matching did not finish within an hour")
            time.sleep(0.5)
        cross_s = time.perf_counter() - t0
        report["crossmatch_done_seconds_after_push_start"] = round(cross_s, 1)
        say(f"cross-town matching queued by the pushes finished {cross_s:.1f}s after the pushes began "
            f"({cross_s - push_s:.1f}s after the last acknowledgement)")

        # 5. latency probes: a resident of home registers at a neighbour's shelter -> home HQ sees them safe
        lat: list[float] = []
        not_auto: list[tuple[float, str]] = []
        used = set(on_rosters)
        with httpx.Client(timeout=60) as http:
            for k in range(a.probes if M > 1 and a.neighbours else 0):
                i = k % M
                host = (i + 1) % M
                with open(towns[i]["registry"], encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    pool_rows = [r for _, r in zip(range(5000), reader)
                                 if r["氏"] and r["名"] and r["生年月日"] and not r["閲覧制限"] and r["宛名番号"] not in used]
                person = rng.choice(pool_rows)
                used.add(person["宛名番号"])
                shelter = shelters_of[host][0]
                eng = shelter_engine(Path(shelter))
                eid = str(ULID())
                at = "2025-04-25T10:00:00+09:00"
                row = {"受付番号": f"P{k}", "氏名": f"{person['氏']} {person['名']}",
                       "ふりがな": f"{person['氏カナ']} {person['名カナ']}", "生年月日": person["生年月日"],
                       "性別": person["性別"], "住所": person["住所"], "電話番号": ""}
                with Session(eng) as s:
                    outbox.append(s, registration(eid, Path(shelter).stem, row, f"probe{k}", at))
                    outbox.append(s, ev.MatchDecided(decision_id=str(ULID()), evacuee_id=eid, resident_id=None,
                                                     decision="none", at=at))
                    s.commit()
                home = town_code(i)
                hdr = {"Authorization": f"Bearer {tokens[home]}"}
                before = http.get(f"{hub_url}/v1/hq/status", headers=hdr).json()["found_elsewhere"]
                t0 = time.perf_counter()
                assert client.sync_once(lambda: Session(eng), hub_url, http=http, pull=False).ok
                while True:
                    now = http.get(f"{hub_url}/v1/hq/status", headers=hdr).json()["found_elsewhere"]
                    if now > before:
                        lat.append(time.perf_counter() - t0)
                        break
                    with admin.connect() as c:  # decided, but not automatically: the home's staff will review
                        d = c.execute(text("SELECT decision FROM hub_cross_link WHERE evacuee_id = :e"),
                                      {"e": eid}).scalar()
                    if d is not None and d != "auto":
                        not_auto.append((time.perf_counter() - t0, d))
                        break
                    if time.perf_counter() - t0 > 120:
                        raise SystemExit(f"probe {k}: the home HQ never saw resident {person['宛名番号']}")
                    time.sleep(0.02)
                eng.dispose()
        if lat:
            report.update(latency_p50_s=round(statistics.median(lat), 3), latency_p95_s=round(pct(lat, 0.95), 3),
                          latency_max_s=round(max(lat), 3), probes=len(lat))
            say(f"registration at another town's shelter -> home HQ sees the resident safe: p50 "
                f"{report['latency_p50_s']}s, p95 {report['latency_p95_s']}s, max {report['latency_max_s']}s "
                f"({len(lat)} probes, push + matching + HQ read)")
        if not_auto:
            report["probes_sent_to_review"] = len(not_auto)
            say(f"{len(not_auto)} probe(s) went to the home's review queue instead (e.g. namesakes): "
                f"{', '.join(f'{d} after {t:.2f}s' for t, d in not_auto)}")

        # 6. quality on the generator's truth
        with admin.connect() as c:
            links = c.execute(text("SELECT municipality_code, host_code, evacuee_id, resident_id, decision, linked, "
                                   "probability FROM hub_cross_link")).all()
        by_ev: dict[str, list[Any]] = {}
        for r in links:
            by_ev.setdefault(r.evacuee_id, []).append(r)
        residents = [e for e, tr in truth_of.items() if tr["category"] == "resident" and tr["resident_id"]]
        non = [e for e, tr in truth_of.items() if e not in set(residents)]
        autos = [(e, r) for e, rs in by_ev.items() if e in truth_of for r in rs if r.linked and r.decision == "auto"]
        right = [(e, r) for e, r in autos if r.municipality_code == truth_of[e]["home"]
                 and r.resident_id == truth_of[e]["resident_id"]]
        reviewed = [e for e in residents if any(r.decision == "review" and r.municipality_code == truth_of[e]["home"]
                                                for r in by_ev.get(e, []))]
        review_top_right = [e for e in reviewed if any(r.decision == "review" and r.resident_id ==
                                                       truth_of[e]["resident_id"] for r in by_ev.get(e, []))]
        wrong_non = [e for e in non if any(r.linked for r in by_ev.get(e, []))]
        # review items a home's staff get for someone who is not their resident (visitors, other towns' people)
        all_reviews = [r for r in links if r.decision == "review"]
        noise = [r for r in all_reviews if not (r.evacuee_id in truth_of and truth_of[r.evacuee_id]["home"] ==
                                                r.municipality_code and truth_of[r.evacuee_id]["category"] == "resident")]
        q = {"cross_town_evacuees": len(truth_of), "residents": len(residents), "non_residents": len(non),
             "auto_links": len(autos), "auto_correct": len(right),
             "auto_precision": round(len(right) / len(autos), 4) if autos else None,
             "auto_resolved_share_of_residents": round(len(right) / len(residents), 4) if residents else None,
             "review_share_of_residents": round(len(reviewed) / len(residents), 4) if residents else None,
             "review_top_candidate_right": round(len(review_top_right) / len(reviewed), 4) if reviewed else None,
             "non_residents_wrongly_auto_linked": len(wrong_non),
             "review_items": len(all_reviews), "review_items_not_the_homes_resident": len(noise),
             "review_p_ge_0.5_right_home": sum(1 for r in all_reviews if r not in noise and (r.probability or 0) >= .5),
             "review_p_ge_0.5_not_resident": sum(1 for r in noise if (r.probability or 0) >= .5)}
        report["quality"] = q
        say(f"cross-town quality on truth: {q['residents']} residents + {q['non_residents']} non-residents; "
            f"auto {q['auto_links']} (precision {q['auto_precision']}), auto-resolved {q['auto_resolved_share_of_residents']}"
            f" of residents, review {q['review_share_of_residents']} (top candidate right "
            f"{q['review_top_candidate_right']}), non-residents wrongly auto-linked {q['non_residents_wrongly_auto_linked']}")
        say(f"review items for home HQs: {q['review_items']}, of which {q['review_items_not_the_homes_resident']} about "
            "someone who is not that home's resident (visitors and namesakes: the price of a recall-first review)")
        try:
            import psutil

            report["hub_rss_mb"] = round(psutil.Process(hub.pid).memory_info().rss / 2**20)
            say(f"hub process RSS: {report['hub_rss_mb']} MB")
            if matcher is not None:
                report["matcher_rss_mb"] = round(psutil.Process(matcher.pid).memory_info().rss / 2**20)
                say(f"matching worker RSS: {report['matcher_rss_mb']} MB")
        except Exception:  # noqa: BLE001 - psutil is in the bench extra only
            pass
        st = store.status(engine)
        report["hub_status"] = st
        say(f"hub status: {json.dumps(st)}")
        if a.json:
            print(json.dumps(report, ensure_ascii=False))
        engine.dispose()
        if failed or st["events"] < total_events:
            raise SystemExit(f"FAILED: {failed[:3]} status={st}")
    finally:
        stop(matcher)
        stop(hub)
        admin.dispose()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            drop_schema(a.pg, schema)


if __name__ == "__main__":
    main()
