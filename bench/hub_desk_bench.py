"""The desks at the hub, measured: HQ's safety list and its files, the 安否照会 desk, certificates, PFIF.

Figures only (no timing assertions), for the closing note of issue 6.  Real pieces end to end: one
municipality's registry backup from the fixtures generator, imported with ``anpi hub registry
import``'s code path (sealed with a data key); its roster (with the generator's truth) spread over
``--shelters`` laptops — SQLite outboxes filled through ``sync.outbox.append_many`` with the events
the shelter services write (registration with consents ⑫⑬⑭ and 様式第1号 items, check-in, the
laptop's match decision, some check-outs) — that enrol and push with ``sync.client.sync_once``
(signed HTTP) to the hub exactly as ``anpi hub serve`` runs it (``app.hub_app.create_app`` under
uvicorn, in a subprocess), on PostgreSQL as a plain role that row-level security binds.  HQ records
are typed at the hub through ``POST /v1/hq/anpi-list/{id}/records``.

Then, over loopback HTTP with an HQ token and a desk token:

- ``GET /v1/hq/anpi-list``: the whole list (first page of 10,000; counts over everyone), every page,
  and one 町字 — p50 / p95 latency and rows;
- ``GET /v1/hq/anpi-list/export``: CSV (UTF-8 BOM, CP932) and xlsx of the whole town and of one
  町字, PDF of the 町字 (``--whole-pdf``: of the whole town too) — seconds and bytes;
- ``POST /v1/hq/inquiries``: 照会 about random evacuees by name + birth date as 同居の親族 — latency
  and outcomes;
- ``POST /v1/hq/certificates`` (manual path, and linked to a resident's household) and the PDF;
- ``GET /v1/hq/pfif/export``: seconds, persons;
- peak RSS of the hub process (sampled with psutil every 50 ms).

Usage::

    python bench/hub_desk_bench.py                      # 60,000 residents, 4 shelters, 6,000 evacuees
    python bench/hub_desk_bench.py --residents 300000 --evacuees 30000 --shelters 20 --whole-pdf
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, timedelta
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# shelter databases are encrypted (SQLCipher): the runs open them with this passphrase (subprocesses too)
os.environ.setdefault("ANPI_PASSPHRASE", "bench passphrase")

from bench.hub_bench import drop_schema, new_schema, pct, pending_jobs, shelter_engine  # noqa: E402
from bench.processes import stop  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlmodel import Session  # noqa: E402
from ulid import ULID  # noqa: E402

from sync import client, events as ev, outbox  # noqa: E402
from sync.hub import registry, store, tenants  # noqa: E402

DEFAULT_PG = os.environ.get("ANPI_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CODE = "03300" + tenants.check_digit("03300")  # the generator's fictional 岩手県三陸浜市
NAME = "三陸浜市"
CAUSE = "令和7年4月1日の地震"
#: the disaster is now: registrations over the last two weeks, the registry backup two months old (ages
#: typed on the roster, 78歳, are the generator's at ROSTER_DAY, and the hub reads them by today's clock)
TODAY = date.today()
ROSTER_DAY = TODAY - timedelta(days=1)
SNAPSHOT_DAY = TODAY - timedelta(days=60)


# ---- the laptops' events ---------------------------------------------------------------------------
def tri(rng: random.Random, yes: float, no: float) -> bool | None:
    """A consent as the desk records it: yes, no, or not asked (None)."""
    x = rng.random()
    return True if x < yes else False if x < yes + no else None


def birth_iso(raw: str) -> str | None:
    """The laptop's reading of a typed birth date (``app.services.roster``): a full date or nothing."""
    from matching.dates import DateError, parse_date

    try:
        pd = parse_date(raw, today=ROSTER_DAY)
    except DateError:
        return None
    return pd.value.isoformat() if pd.kind == "day" and pd.value is not None else None


def shelter_events(roster: list[dict[str, str]], truth: dict[str, dict[str, str]], shelters: list[str],
                   rng: random.Random) -> tuple[dict[str, list[ev.EventPayload]], list[dict[str, Any]]]:
    """Every roster row as the shelter services journal it (``app.services.journal``), spread over the
    shelters by arrival group; returns the events per shelter and what was registered (for the desks)."""
    backlog: dict[str, list[ev.EventPayload]] = {s: [] for s in shelters}
    registered: list[dict[str, Any]] = []
    shelter_of_group: dict[str, str] = {}
    for k, row in enumerate(roster):
        tr = truth.get(row["受付番号"], {})
        group = tr.get("group") or f"solo{k}"
        shelter = shelter_of_group.setdefault(group, rng.choice(shelters))
        eid = str(ULID())
        at = (f"{TODAY - timedelta(days=1 + rng.randrange(14))}T{rng.randrange(24):02d}:{rng.randrange(60):02d}"
              ":00+09:00")
        items = backlog[shelter]
        consents = {"relatives": tri(rng, .6, .05), "acquaintances": tri(rng, .4, .1), "public": tri(rng, .35, .15)}
        items.append(ev.EvacueeRegistered(
            evacuee_id=eid, shelter_code=shelter, external_key=row["受付番号"], name=row["氏名"] or None,
            name_kana=row["ふりがな"] or None, birth_date_raw=row["生年月日"] or None,
            birth_date=birth_iso(row["生年月日"]) if row["生年月日"] else None, sex=row["性別"] or None,
            address=row["住所"] or None, phone=row["電話番号"] or None, household_key=f"{shelter}-{group}",
            registered_at=at,
            consents=consents,
            nationality="日本" if rng.random() < .9 else None, identifying_info=f"受付 {row['受付番号']}",
            injury="なし" if rng.random() < .8 else "足のけが", current_location=f"体育館 {rng.randrange(1, 40)}番",
            contact=row["電話番号"] or None))
        items.append(ev.StayRecorded(stay_id=str(ULID()), evacuee_id=eid, kind="check_in", at=at, shelter_code=shelter))
        rid = tr.get("resident_id") if tr.get("category") == "resident" else None
        items.append(ev.MatchDecided(decision_id=str(ULID()), evacuee_id=eid, resident_id=rid or None,
                                     decision="auto" if rid else "none", at=at, snapshot_as_of=SNAPSHOT_DAY.isoformat()))
        if rng.random() < 0.15:
            items.append(ev.StayRecorded(stay_id=str(ULID()), evacuee_id=eid, kind="check_out",
                                         at=at[:11] + "23:59:00+09:00", destination="親戚宅", shelter_code=shelter))
        registered.append({"evacuee_id": eid, "row": row, "resident_id": rid, "consents": consents,
                           "noise": tr.get("noise", "")})
    return backlog, registered


def fill_and_enroll(path: Path, items: list[ev.EventPayload], engine: Any, hub_url: str, http: httpx.Client) -> None:
    eng = shelter_engine(path)
    with Session(eng) as s:
        outbox.append_many(s, items)
        s.commit()
    slot = store.create_enrolment(engine, path.stem, CODE)
    client.enroll(lambda: Session(eng), hub_url, slot.code, path.stem, http=http)
    eng.dispose()


def push(path: Path, hub_url: str) -> tuple[int, bool, str | None]:
    eng = shelter_engine(path)
    with httpx.Client(timeout=300) as http:
        r = client.sync_once(lambda: Session(eng), hub_url, http=http, batch_size=500, pull=False, max_retries=8)
    eng.dispose()
    return r.acknowledged, r.ok, r.error


# ---- the hub process -----------------------------------------------------------------------------
def start_hub(db_url: str, port: int, key_text: str, log: Path) -> subprocess.Popen:
    """``anpi hub serve`` (uvicorn over ``app.hub_app``: sync's hub plus the desks' routes)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANPI_HUB_DATA_KEY=key_text)
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "hub", "serve", "--database-url", db_url,
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"hub exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit("hub did not start")


class RssPeak:
    """Samples the hub process's RSS in a thread: the peak of a request is gone once it answers."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        import psutil

        self.proc, self.every, self.peak, self._stop = psutil.Process(pid), every, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:  # noqa: BLE001 - the process ended
                return
            self._stop.wait(self.every)

    def now(self) -> int:
        return int(self.proc.memory_info().rss)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)


# ---- measuring -----------------------------------------------------------------------------------
def timed(fn: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def ok(r: httpx.Response, what: str) -> httpx.Response:
    if r.status_code >= 400:
        raise SystemExit(f"{what}: HTTP {r.status_code} {r.text[:300]}")
    return r


def ms(v: float) -> str:
    return f"{v * 1000:,.0f} ms"


def lat(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": round(statistics.median(values) * 1000, 1) if values else None,
            "p95_ms": round(pct(values, 0.95) * 1000, 1) if values else None,
            "max_ms": round(max(values) * 1000, 1) if values else None}


def lat_text(d: dict[str, Any]) -> str:
    if not d["n"]:
        return "—"
    return f"p50 {d['p50_ms']:,.0f} ms, p95 {d['p95_ms']:,.0f} ms, max {d['max_ms']:,.0f} ms (n={d['n']})"


def households(rows: list[dict[str, str]], n: int, rng: random.Random) -> list[dict[str, str]]:
    """Heads of n random households that a desk can print as registered (no 閲覧制限, no 英字氏名)."""
    by: dict[str, list[dict[str, str]]] = {}
    for p in rows:
        by.setdefault(p["世帯番号"], []).append(p)
    heads = [m[0] for m in by.values() if m[0]["続柄"] == "世帯主" and m[0]["氏"] and m[0]["名"]
             and not any(p["閲覧制限"] or p["英字氏名"] for p in m)]
    return rng.sample(heads, min(n, len(heads)))


def main() -> None:  # noqa: C901 - one linear script
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--residents", type=int, default=60_000, help="registry backup rows")
    p.add_argument("--evacuees", type=int, default=6_000, help="roster rows, spread over the shelters")
    p.add_argument("--shelters", type=int, default=4)
    p.add_argument("--hq-records", type=int, default=300, help="HQ records typed at the hub (POST …/records)")
    p.add_argument("--repeats", type=int, default=10, help="requests per list latency figure")
    p.add_argument("--inquiries", type=int, default=50)
    p.add_argument("--kana", action="store_true", help="inquirers also give the reading (フリガナ)")
    p.add_argument("--certificates", type=int, default=20, help="issues (and PDFs) per path")
    p.add_argument("--town", default="", help="町字 for the filtered list and exports (default: the largest)")
    p.add_argument("--whole-pdf", action="store_true", help="also the PDF of the whole town (slow at 60,000)")
    p.add_argument("--port", type=int, default=18191)
    p.add_argument("--pg", default=DEFAULT_PG)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the schema and the temporary folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = p.parse_args()
    rng = random.Random(a.seed)
    say = (lambda *x: None) if a.json else (lambda *x: print(*x, flush=True))
    report: dict[str, Any] = {"residents": a.residents, "evacuees": a.evacuees, "shelters": a.shelters,
                              "cores": os.cpu_count()}
    table: list[tuple[str, str]] = []

    schema, admin_url, url = new_schema(a.pg, "hubdesk_")
    admin = create_engine(admin_url)
    tmp = Path(tempfile.mkdtemp(prefix="anpi-hubdesk-"))
    key = registry.DataKey.generate()
    hub = rss = None
    engine = None
    try:
        # 1. data: registry backup at the hub, users
        from app.hub_registry import store_at_hub
        from fixtures.generate import make_dataset

        t0 = time.perf_counter()
        ds = make_dataset(tmp / "data", residents=a.residents, evacuees=a.evacuees, seed=f"hub-desk-{a.seed}",
                          snapshot_date=SNAPSHOT_DAY, roster_date=ROSTER_DAY)
        say(f"generated {a.residents:,} residents and a roster of {a.evacuees:,} in {time.perf_counter() - t0:.1f}s")
        engine = store.open_hub_engine(url)
        store.hub_identity(engine)
        tenants.add_municipality(engine, CODE, NAME, actor="bench")
        hq_token = tenants.add_user(engine, CODE, "本部 一郎", "hq", actor="bench")[1]
        desk_token = tenants.add_user(engine, CODE, "窓口 花子", "desk", actor="bench")[1]
        t0 = time.perf_counter()
        info = store_at_hub(engine, key, CODE, ds.registry_path, gaiji_map=ds.gaiji_map_path, as_of=SNAPSHOT_DAY,
                            imported_by="bench")
        report["registry_import_s"] = round(time.perf_counter() - t0, 1)
        say(f"hub registry import: {info.row_count:,} rows, sealed, in {report['registry_import_s']}s")
        with ds.registry_path.open(encoding="utf-8-sig") as fh:
            reg_rows = list(csv.DictReader(fh))
        reg_by_id = {r["宛名番号"]: r for r in reg_rows}
        with ds.gaiji_map_path.open(encoding="utf-8") as fh:  # 外字 as the family would write them
            gaiji = {chr(int(r["code"][2:], 16)): r["char"] for r in csv.DictReader(fh)}
        with ds.roster_path.open(encoding="utf-8-sig") as fh:
            roster = list(csv.DictReader(fh))
        with ds.truth_path.open(encoding="utf-8") as fh:
            truth = {r["evacuee_id"]: r for r in csv.DictReader(fh)}

        # 2. the hub, the laptops, their pushes
        hub = start_hub(url, a.port, key.to_text(), tmp / "hub.log")
        rss = RssPeak(hub.pid)
        hub_url = f"http://127.0.0.1:{a.port}"
        paths = [tmp / f"shelter{s:02d}.db" for s in range(a.shelters)]
        backlog, registered = shelter_events(roster, truth, [pth.stem for pth in paths], rng)
        n_events = sum(len(v) for v in backlog.values())
        t0 = time.perf_counter()
        with httpx.Client(timeout=60) as http:
            for pth in paths:
                fill_and_enroll(pth, backlog[pth.stem], engine, hub_url, http)
        say(f"filled and enrolled {a.shelters} laptops ({n_events:,} events) in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.shelters) as pool:
            results = list(pool.map(lambda pth: push(pth, hub_url), paths))
        push_s = time.perf_counter() - t0
        failed = [r for r in results if not r[1]]
        if failed:
            raise SystemExit(f"push failed: {failed[:3]}")
        while pending_jobs(admin) and time.perf_counter() - t0 < 600:
            time.sleep(0.2)
        report.update(events=n_events, push_s=round(push_s, 1), events_per_s=round(n_events / push_s))
        table.append(("set-up: laptops push (sync over HTTP)",
                      f"{n_events:,} events from {a.shelters} laptops in {push_s:.1f} s ({n_events / push_s:,.0f}/s)"))
        say(table[-1][1])

        H = {"Authorization": f"Bearer {hq_token}"}
        D = {"Authorization": f"Bearer {desk_token}"}
        with httpx.Client(base_url=hub_url, timeout=900) as http:
            # 3. HQ records typed at the hub
            record_lat: list[float] = []
            for i, rid in enumerate(rng.sample(sorted(r["宛名番号"] for r in reg_rows if not r["閲覧制限"]),
                                               min(a.hq_records, len(reg_rows)))):
                body = {"status": ("confirmed_other", "missing", "dead")[i % 3], "method": "電話", "note": "bench"}
                s, r = timed(lambda: http.post(f"/v1/hq/anpi-list/{rid}/records", headers=H, json=body))
                ok(r, "POST records")
                record_lat.append(s)
            report["hq_record"] = lat(record_lat)
            table.append(("POST /v1/hq/anpi-list/{id}/records (HQ record)", lat_text(report["hq_record"])))

            # 4. the list
            full_lat: list[float] = []
            for _ in range(a.repeats):
                s, r = timed(lambda: http.get("/v1/hq/anpi-list?limit=10000", headers=H))
                full_lat.append(s)
            full = ok(r, "anpi-list").json()
            report["list_full"] = {**lat(full_lat), "rows": full["total"], "page_rows": len(full["rows"]),
                                   "safe": full["safe"], "counts": full["counts"]}
            table.append(("GET /v1/hq/anpi-list, whole town (page of 10,000)",
                          f"{lat_text(report['list_full'])}; {full['total']:,} rows, {len(full['rows']):,} on the "
                          f"page, {full['safe']:,} safe"))
            t0 = time.perf_counter()
            got = 0
            for off in range(0, full["total"], 10000):
                got += len(ok(http.get(f"/v1/hq/anpi-list?limit=10000&offset={off}", headers=H), "page").json()["rows"])
            report["list_all_pages_s"] = round(time.perf_counter() - t0, 2)
            table.append(("GET /v1/hq/anpi-list, every page", f"{report['list_all_pages_s']} s for {got:,} rows"))
            town = a.town or max(full["town_counts"], key=lambda t: sum(full["town_counts"][t].values()))
            town_lat: list[float] = []
            for _ in range(a.repeats):
                s, r = timed(lambda: http.get("/v1/hq/anpi-list", params={"town": town, "limit": 10000}, headers=H))
                town_lat.append(s)
            tl = ok(r, "anpi-list town").json()
            report["list_town"] = {**lat(town_lat), "town": town, "rows": tl["total"], "towns": len(full["town_counts"])}
            table.append((f"GET /v1/hq/anpi-list?town={town}",
                          f"{lat_text(report['list_town'])}; {tl['total']:,} rows (largest of "
                          f"{len(full['town_counts'])} 町字)" if not a.town else f"{lat_text(report['list_town'])}; "
                          f"{tl['total']:,} rows"))

            # 5. the list as files
            exports = [("csv", "utf-8-sig", None), ("csv", "cp932", None), ("xlsx", "", None),
                       ("csv", "utf-8-sig", town), ("csv", "cp932", town), ("xlsx", "", town), ("pdf", "", town)]
            if a.whole_pdf:
                exports.append(("pdf", "", None))
            report["exports"] = []
            for fmt, enc, t in exports:
                params: dict[str, Any] = {"format": fmt}
                if enc:
                    params["encoding"] = enc
                if t:
                    params["town"] = t
                s, r = timed(lambda: http.get("/v1/hq/anpi-list/export", params=params, headers=H))
                ok(r, f"export {fmt} {enc} {t or 'whole town'}")
                e = {"format": fmt, "encoding": enc, "town": t, "seconds": round(s, 2), "bytes": len(r.content),
                     "rows": int(r.headers.get("X-Anpi-Rows", 0)),
                     "replacements": int(r.headers.get("X-Anpi-Replacements", 0))}
                report["exports"].append(e)
                label = f"{fmt.upper()}{' ' + ('UTF-8 BOM' if enc == 'utf-8-sig' else 'CP932') if enc else ''}"
                table.append((f"GET /v1/hq/anpi-list/export {label}, {t or 'whole town'}",
                              f"{s:.2f} s, {len(r.content) / 1e6:.2f} MB, {e['rows']:,} rows, "
                              f"{e['replacements']} replacements"))

            # 6. 安否照会 desk
            def asked(item: dict[str, Any]) -> tuple[str, str, str, str]:
                """(name, kana, birth, kind): a resident as registered, someone from elsewhere as typed."""
                reg = reg_by_id.get(item["resident_id"] or "")
                if reg is not None:
                    name = "".join(gaiji.get(ch, ch) for ch in f"{reg['氏']} {reg['名']}".strip())
                    return name, f"{reg['氏カナ']} {reg['名カナ']}".strip(), reg["生年月日"], "resident"
                return item["row"]["氏名"], item["row"]["ふりがな"], item["row"]["生年月日"], "non-resident"

            askable = [x for x in registered if asked(x)[0] and asked(x)[2]]  # by name + birth date
            sample = rng.sample(askable, min(a.inquiries, len(askable)))
            inq_lat: list[float] = []
            outcomes: Counter[str] = Counter()
            by_kind: Counter[str] = Counter()
            unanswered: list[dict[str, Any]] = []
            for item in sample:
                name, kana, birth, kind = asked(item)
                body = {"inquirer_name": "浜野 太郎", "inquirer_address": "岩手県盛岡市内丸1", "id_proof": "運転免許証",
                        "relationship": "同居の親族", "purpose": "安否の確認", "sought_name": name or "不明",
                        "sought_birth": birth, **({"sought_kana": kana} if a.kana else {})}
                s, r = timed(lambda: http.post("/v1/hq/inquiries", headers=D, json=body))
                inq_lat.append(s)
                out = r.json().get("outcome") if r.status_code == 200 else \
                    f"HTTP {r.status_code} ({r.json().get('field') or r.json().get('detail', '')[:40]})"
                outcomes[out] += 1
                by_kind[f"{kind}:{out}"] += 1
                if kind == "resident" and out != "answered":  # why: refused ⑫, or typed too differently
                    why = ["⑫=no"] if item["consents"]["relatives"] is False else []
                    why += [t for t in item["noise"].split(";") if t.startswith(("name=", "birth=", "kanji="))]
                    unanswered.append({"outcome": out, "why": why or ["-"], "asked": [name, birth],
                                       "typed": [item["row"]["氏名"], item["row"]["ふりがな"], item["row"]["生年月日"]]})
            report["inquiries"] = {**lat(inq_lat), "outcomes": dict(outcomes), "by_kind": dict(by_kind),
                                   "residents_not_answered": unanswered}
            why_counts = Counter(w.split(":")[0] for u in unanswered for w in u["why"])
            table.append((f"POST /v1/hq/inquiries (同居の親族, name{' + kana' if a.kana else ''} + birth date)",
                          f"{lat_text(report['inquiries'])}; "
                          + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items()))
                          + (" (residents not answered — roster typed: "
                             + ", ".join(f"{k} {v}" for k, v in why_counts.most_common()) + ")" if unanswered else "")))

            # 7. certificates: the manual path and a resident's household, each with its PDF
            for path_name, bodies in (
                    ("manual", [{"manual": True, "kind": "risai", "damage": "半壊", "cause": CAUSE,
                                 "name": f"浜野　{i}郎", "address": f"岩手県三陸浜市本町{i + 1}番地",
                                 "members": [{"name": f"浜野　花子{i}", "relationship": "妻"}]}
                                for i in range(a.certificates)]),
                    ("resident", [{"resident_id": h["宛名番号"], "kind": "risai", "damage": "半壊", "cause": CAUSE,
                                   "in_person": True, "id_note": "運転免許証"}
                                  for h in households(reg_rows, a.certificates, rng)])):
                issue_lat: list[float] = []
                pdf_lat: list[float] = []
                pdf_bytes: list[int] = []
                errors: Counter[str] = Counter()
                for body in bodies:
                    s, r = timed(lambda: http.post("/v1/hq/certificates", headers=D, json=body))
                    if r.status_code != 201:
                        errors[f"issue HTTP {r.status_code}: {r.json().get('detail', '')[:60]}"] += 1
                        continue
                    issue_lat.append(s)
                    number = r.json()["number"]
                    s, r = timed(lambda: http.get(f"/v1/hq/certificates/{number}/pdf", headers=D))
                    if r.status_code != 200:
                        errors[f"pdf HTTP {r.status_code}"] += 1
                        continue
                    pdf_lat.append(s)
                    pdf_bytes.append(len(r.content))
                report[f"certificate_{path_name}"] = {"issue": lat(issue_lat), "pdf": lat(pdf_lat),
                                                      "pdf_bytes_median": int(statistics.median(pdf_bytes))
                                                      if pdf_bytes else None, "errors": dict(errors)}
                c = report[f"certificate_{path_name}"]
                err = f"; errors: {dict(errors)}" if errors else ""
                table.append((f"POST /v1/hq/certificates ({path_name})", lat_text(c["issue"]) + err))
                table.append((f"GET /v1/hq/certificates/{{n}}/pdf ({path_name})",
                              f"{lat_text(c['pdf'])}; {(c['pdf_bytes_median'] or 0) / 1e3:.0f} kB each"))

            # 8. PFIF
            s, r = timed(lambda: http.get("/v1/hq/pfif/export", headers=H))
            ok(r, "pfif export")
            report["pfif_export"] = {"seconds": round(s, 2), "persons": int(r.headers.get("X-Anpi-Persons", 0)),
                                     "bytes": len(r.content)}
            table.append(("GET /v1/hq/pfif/export", f"{s:.2f} s, {report['pfif_export']['persons']:,} persons, "
                          f"{len(r.content) / 1e6:.2f} MB"))

        rss.close()
        report["hub_rss_end_mb"] = round(rss.now() / 2**20)
        report["hub_rss_peak_mb"] = max(round(rss.peak / 2**20), report["hub_rss_end_mb"])
        table.append(("hub process RSS (psutil, sampled every 50 ms)",
                      f"peak {report['hub_rss_peak_mb']:,} MB, at the end {report['hub_rss_end_mb']:,} MB"))
        report["hub_status"] = store.status(engine)

        if a.json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            print(f"\nHub desks — {a.residents:,} residents, {len(registered):,} evacuees at {a.shelters} shelters, "
                  f"{a.hq_records} HQ records; {os.cpu_count()} cores\n")
            print("| measurement | figure |")
            print("|---|---|")
            for k, v in table:
                print(f"| {k} | {v} |")
    finally:
        if rss is not None:
            rss.close()
        stop(hub)
        if engine is not None:
            engine.dispose()
        admin.dispose()
        if a.keep:
            say(f"kept {tmp} and schema {schema}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            drop_schema(a.pg, schema)


if __name__ == "__main__":
    main()
