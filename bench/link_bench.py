"""Sync over a satellite-phone link (issue 16): bytes per evacuee, time to acknowledged, urgent latency.

Real pieces: a hub (``sync.hub.server`` under uvicorn on loopback, SQLite or PostgreSQL), a shelter
SQLite file filled through ``sync.outbox.append`` (one registration, one stay, one match decision
per evacuee, names and addresses from Faker ja_JP), ``sync.client.sync_once`` pushing through
:class:`bench.linkshaper.LinkShaper` (rate, round trip, loss, a cut every N seconds). Two seconds
into each run a new registration is typed; the bench polls the hub until it is visible there.
After each run the hub is checked against the laptop: nothing lost, nothing doubled.

Prints per case: bytes per evacuee on the wire (both directions, HTTP headers included) and in a
USB bundle, time until everything is acknowledged, time until the new registration is visible.

Usage::

    python bench/link_bench.py --quick                     # 1,000 evacuees, 64 kbit/s, with and without cuts
    python bench/link_bench.py                             # 1,000 and 6,000 at 64 kbit/s; 1,000 at 9.6 kbit/s
    python bench/link_bench.py --cases 6000:9.6:0          # evacuees:kbps:cut-every (0 = no cuts)
    python bench/link_bench.py --registry 60000            # registry pull of a 60 k town at 64 kbit/s
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from faker import Faker  # noqa: E402
from sqlalchemy import select  # noqa: E402
from ulid import ULID  # noqa: E402

from bench.linkshaper import LinkShaper  # noqa: E402
from bench.sync_bench import shelter_engine  # noqa: E402
from sync import bundles, client, events as ev, outbox  # noqa: E402
from sync.hub import server, store  # noqa: E402

DEFAULT_CASES = ["1000:64:0", "1000:64:30", "6000:64:0", "6000:64:30", "1000:9.6:0", "1000:9.6:30"]
QUICK_CASES = ["1000:64:0", "1000:64:30"]


def evacuee_events(fk: Faker, rng: random.Random, i: int, code: str = "S01") -> list[ev.EventPayload]:
    """One evacuee as a shelter records it: registration, check-in, the engine's match decision."""
    eid = str(ULID())
    at = f"2026-03-{11 + i // 3000:02d}T{(i // 120) % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}+09:00"
    reg = ev.EvacueeRegistered(
        evacuee_id=eid, shelter_code=code, external_key=str(i + 1), name=fk.name(), name_kana=fk.kana_name(),
        birth_date_raw=None, birth_date=fk.date_of_birth().isoformat(), sex=rng.choice("12"), address=fk.address(),
        phone=fk.phone_number(), household_key=f"H{i // 3}", care={}, consents={"share": True, "relatives": True},
        registered_at=at)
    stay = ev.StayRecorded(stay_id=str(ULID()), evacuee_id=eid, kind="check_in", at=at, shelter_code=code)
    dec = ev.MatchDecided(decision_id=str(ULID()), evacuee_id=eid, resident_id=str(100000 + i), decision="auto", at=at,
                          snapshot_as_of="2026-02-28", score=0.9995, reasons="kana=exact; birth=exact; kanji=exact",
                          municipality_code="034100")
    return [reg, stay, dec]


class Shelter:
    def __init__(self, path: Path) -> None:
        from sqlmodel import Session

        self.engine = shelter_engine(path)
        self._session = Session

    def session(self) -> Any:
        return self._session(self.engine)

    def fill(self, n: int, seed: int = 1) -> None:
        fk, rng = Faker("ja_JP"), random.Random(seed)
        fk.seed_instance(seed)
        with self.session() as s:
            for i in range(n):
                outbox.append_many(s, evacuee_events(fk, rng, i))
            s.commit()

    def local_ids(self) -> set[str]:
        from sync.models import OutboxEvent

        with self.session() as s:
            return set(s.execute(select(OutboxEvent.event_id)).scalars())


class Hub:
    def __init__(self, url: str) -> None:
        from tests.sync.helpers import ThreadedServer

        self.app = server.create_hub_app(url)
        self.engine = self.app.state.engine
        self.srv = ThreadedServer(self.app).__enter__()

    def close(self) -> None:
        self.srv.__exit__(None, None, None)
        self.engine.dispose()

    def held(self) -> list[str]:
        return [r[3] for r in store.held_events(self.engine)]

    def has_event(self, event_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(store.hub_event.c.event_id).where(
                store.hub_event.c.event_id == event_id)).first() is not None

    def has_evacuee(self, evacuee_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(store.hub_evacuee.c.evacuee_id).where(
                store.hub_evacuee.c.evacuee_id == evacuee_id, store.hub_evacuee.c.registered.is_(True))).first() is not None


def enroll(sh: Shelter, hub: Hub, name: str) -> None:
    slot = store.create_enrolment(hub.engine, name)
    with httpx.Client(timeout=30) as http:
        client.enroll(sh.session, hub.srv.url, slot.code, name, http=http)


def run_case(tmp: Path, hub_url: str, n: int, kbps: float, cut: float, *, rtt: float, loss: float,
             wire_version: int = 2, late_after: float = 2.0, deadline: float = 3600.0) -> dict[str, Any]:
    hub = Hub(hub_url(tmp))
    sh = Shelter(tmp / "shelter.db")
    try:
        enroll(sh, hub, f"shelter-{n}-{kbps}-{cut}")
        sh.fill(n)
        with sh.session() as s:
            pending = outbox.pending_count(s)
        late: dict[str, Any] = {}

        def type_late() -> None:  # a volunteer registers someone while the backlog goes out
            time.sleep(late_after)
            with sh.session() as s:
                row = outbox.append(s, ev.EvacueeRegistered(evacuee_id=str(ULID()), shelter_code="S01", name="新規 登録",
                                                            name_kana="シンキ トウロク", registered_at="2026-03-12T10:00:00+09:00"))
                s.commit()
                late.update(event_id=row.event_id, evacuee_id=row.payload and json.loads(row.payload)["evacuee_id"],
                            typed=time.monotonic())
            while time.monotonic() - late["typed"] < deadline:
                if hub.has_evacuee(late["evacuee_id"]):
                    late["visible"] = time.monotonic() - late["typed"]
                    return
                time.sleep(0.1)

        with LinkShaper(hub.srv.port, kbps=kbps, rtt_ms=rtt, loss=loss, cut_every=cut or None) as link:
            watcher = threading.Thread(target=type_late, daemon=True)
            t0 = time.monotonic()
            watcher.start()
            runs, left = 0, pending + 1
            while time.monotonic() - t0 < deadline:
                res = client.sync_once(sh.session, link.url, timeout=120, max_retries=8, backoff=0.5,
                                       wire_version=wire_version)
                runs += 1
                with sh.session() as s:
                    left = outbox.pending_count(s)
                if res.ok and left == 0 and "event_id" in late:
                    break
            acked = time.monotonic() - t0
            watcher.join(max(0.0, deadline - acked))
            up, down, cuts = link.bytes_up, link.bytes_down, link.cuts
        held, local = hub.held(), sh.local_ids()
        bundle = bundles.export_bundle(sh.session, tmp / "b.anpi", version=wire_version)
        return {"evacuees": n, "kbps": kbps, "rtt_ms": rtt, "cut_every_s": cut, "wire": wire_version,
                "events": pending + 1, "runs": runs, "cuts": cuts, "pending_left": left,
                "bytes_up": up, "bytes_down": down, "wire_bytes_per_evacuee": round((up + down) / n, 1),
                "bundle_bytes_per_evacuee": round(_bundle_of_all(sh, tmp, wire_version) / n, 1) if bundle else None,
                "seconds_to_acknowledged": round(acked, 1), "new_registration_visible_s": late.get("visible"),
                "hub_matches_laptop": sorted(held) == sorted(local) and len(held) == len(set(held))}
    finally:
        hub.close()
        sh.engine.dispose()


def _bundle_of_all(sh: Shelter, tmp: Path, version: int) -> int:
    """The size of a bundle carrying every event (as before the sync): acks are cleared in a copy."""
    import shutil

    from sync.models import OutboxEvent

    copy = tmp / "copy.db"
    sh.engine.dispose()
    shutil.copy(tmp / "shelter.db", copy)
    other = Shelter(copy)
    with other.engine.begin() as conn:
        conn.execute(OutboxEvent.__table__.update().values(acked_at=None))  # type: ignore[attr-defined]
    size = bundles.export_bundle(other.session, tmp / "all.anpi", version=version).size
    other.engine.dispose()
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only 1,000 evacuees at 64 kbit/s, with and without cuts")
    ap.add_argument("--cases", default="", help="comma-separated evacuees:kbps:cut_every, e.g. 6000:9.6:30")
    ap.add_argument("--rtt-ms", type=float, default=600.0)
    ap.add_argument("--loss", type=float, default=0.0, help="chunk loss probability (seen as a retransmission)")
    ap.add_argument("--v1", action="store_true", help="also measure the old format (no shaping cost shown)")
    ap.add_argument("--pg", default="", help="PostgreSQL URL for the hub (default: a SQLite hub file)")
    ap.add_argument("--registry", type=int, default=0, help="registry pull of a town of N residents at 64 kbit/s")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cases = args.cases.split(",") if args.cases else (QUICK_CASES if args.quick else DEFAULT_CASES)
    out = []
    for case in cases if not args.registry else []:
        n, kbps, cut = case.split(":")
        for version in ([1, 2] if args.v1 else [2]):
            with tempfile.TemporaryDirectory(prefix="anpi-link-") as d:
                got = run_case(Path(d), _hub_url(args.pg), int(n), float(kbps), float(cut), rtt=args.rtt_ms,
                               loss=args.loss, wire_version=version)
            out.append(got)
            print(json.dumps(got) if args.json else _line(got), flush=True)
    if args.registry:
        from bench.registry_pull_bench import run_registry

        with tempfile.TemporaryDirectory(prefix="anpi-reg-") as d:
            got = run_registry(Path(d), args.registry, kbps=64.0, rtt=args.rtt_ms)
        print(json.dumps(got) if args.json else got, flush=True)


def _hub_url(pg: str) -> Any:
    if pg:
        from tests.sync.conftest import new_pg_schema

        return lambda tmp: new_pg_schema()[1]
    return lambda tmp: f"sqlite:///{tmp / 'hub.db'}"


def _line(r: dict[str, Any]) -> str:
    ok = "OK" if r["hub_matches_laptop"] and not r["pending_left"] else "MISMATCH"
    return (f"{r['evacuees']:>5} evacuees  {r['kbps']:>4} kbit/s  rtt {r['rtt_ms']:.0f} ms  cuts every {r['cut_every_s'] or '-'} s"
            f"  wire v{r['wire']}: {r['wire_bytes_per_evacuee']} B/evacuee on the wire, {r['bundle_bytes_per_evacuee']} B/evacuee in a bundle;"
            f" acknowledged in {r['seconds_to_acknowledged']} s ({r['runs']} runs, {r['cuts']} cuts);"
            f" new registration visible after {r['new_registration_visible_s']} s; hub vs laptop {ok}")


if __name__ == "__main__":
    main()
