"""Evacuees across town lines: match a host's unmatched evacuees against sharing homes' registries.

In 2011 whole towns fled to shelters in other municipalities, where nobody held their registry.
When a home municipality shares with a host (:func:`sync.hub.tenants.share`), an evacuee
registered at one of the host's shelters is matched at the hub against the home's registry
backup if

- the host's shelter could not match them (its newest decision is ``none``, ``review``,
  ``rejected`` or ``not_resident``), or
- the address they gave names the home municipality.

The same engine as everywhere (:mod:`matching`) decides, with the same rules: a link is
automatic only when the engine says ``auto`` for one home, no other home has a strong candidate
of its own, and the resident is not already linked to another evacuee; anything else becomes a
review item for the *home's* HQ staff — for a home the evacuee's address does not name, only
when the candidate holds at least :data:`REVIEW_FLOOR` of the posterior (visitors and namesakes
would otherwise fill every sharing town's queue).  Staff decisions are final.

What crosses the line, and nothing more:

- to the home (its :data:`~sync.hub.store.hub_cross_link` rows): the evacuee as registered at
  the host's shelter (name, reading, birth, sex, address, shelter, status), kept current;
- to the host's shelters (a ``crossmatch.linked`` notice in the host's feed): "住民: ○○町" and
  the matched resident's basic four items (氏名, 生年月日, 性別, 住所) — never the 宛名番号, never
  anything of a 閲覧制限 resident.  Every such disclosure is audited in the home's log.

Work is queued (``hub_crossmatch_job``, one row per host evacuee) while events are applied and
done by :func:`run_pending` after the push has been answered, outside the ingest lock: building
a matcher for a registry takes seconds, so it must never delay acknowledgements.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from matching.engine import Matcher, MatchResult
from matching.person import stored_keys
from matching.query import Query
from matching.registry_index import RegistryIndex
from sync.settings import SyncSettings
from sync.errors import HubConflict, HubNotFound
from sync.events import LINKING_DECISIONS, desired_link
from sync.hub import audit, registry
from sync.hub.registry import DataKey, Records
from sync.hub.store import (
    _insert, homes_for_host, hub_cross_link, hub_crossmatch_job, hub_decision, hub_device, hub_evacuee, hub_lock,
    hub_notice, hub_person_link, hub_review_item, in_, insert_notices, municipality_names, new_row_id, set_tenant,
    tenant_codes, utcnow,
)

#: a host decision after which its evacuee may be someone else's resident
UNMATCHED = ("none", "review", "rejected", "not_resident")
#: a home whose name the evacuee's address does not mention gets a review item only for a
#: candidate holding at least this posterior: every host's visitors and namesakes would
#: otherwise flood every sharing home's queue (bench: −70 % of such items, −2 % of residents)
REVIEW_FLOOR = SyncSettings.from_env().hub_cross_review_floor
MATCHER_CACHE = SyncSettings.from_env().hub_matcher_cache


# ---- queueing (inside the ingest transaction, tenant = host) -----------------------------------------
def after_apply(conn: Connection, host: str, *, registered: Mapping[str, str], decided: Mapping[str, str],
                touched: set[str], now: datetime) -> int:
    """Queue the batch's candidates; refresh homes' view of evacuees they already found.

    Queued: evacuees whose address names a sharing home, and evacuees the host's shelter could
    not match (newest decision in :data:`UNMATCHED`).  A *linking* decision only re-queues an
    evacuee that was looked at before (its cross-town link, if any, must then go) — the host's
    own residents found at its own shelters cost nothing here.  Cheap when nobody shares with
    ``host`` (one indexed query)."""
    all_homes = homes_for_host(conn, host, active_only=False)
    if not all_homes:
        return 0
    active = homes_for_host(conn, host)
    jobs: dict[str, str] = {}
    if active:
        names = municipality_names(conn)
        for eid, address in registered.items():
            if address and any(names.get(h) and names[h] in address for h in active):
                jobs[eid] = "address"
        for eid, decision in decided.items():
            if decision in UNMATCHED:
                jobs.setdefault(eid, "decision")
    linking = sorted(eid for eid, d in decided.items() if d not in UNMATCHED and eid not in jobs)
    if linking:
        set_tenant(conn, host)
        for r in conn.execute(select(hub_crossmatch_job.c.evacuee_id).where(
                hub_crossmatch_job.c.municipality_code == host, in_(conn, hub_crossmatch_job.c.evacuee_id, linking))):
            jobs[r[0]] = "linked at the host"
    enqueue(conn, host, jobs, now)
    refresh = (touched | set(registered)) - set(jobs)
    if refresh:
        refresh_links(conn, host, all_homes, refresh, now)
    set_tenant(conn, host)
    return len(jobs)


def enqueue(conn: Connection, host: str, jobs: Mapping[str, str], now: datetime) -> None:
    if not jobs:
        return
    set_tenant(conn, host)
    rows = [dict(municipality_code=host, evacuee_id=eid, status="pending", reason=why, version=1,
                 created_at=now, updated_at=now) for eid, why in sorted(jobs.items())]
    for i in range(0, len(rows), 500):  # one multi-row upsert per 500 (not one round trip per job)
        stmt = _insert(conn, hub_crossmatch_job).values(rows[i:i + 500])
        stmt = stmt.on_conflict_do_update(
            index_elements=["municipality_code", "evacuee_id"],
            set_={"status": "pending", "reason": stmt.excluded.reason, "updated_at": stmt.excluded.updated_at,
                  "version": hub_crossmatch_job.c.version + 1})
        conn.execute(stmt)


def enqueue_host_backlog(engine: Engine, host: str) -> int:
    """A new agreement: every registered evacuee of the host is looked at once."""
    with engine.begin() as conn:
        hub_lock(conn, host)
        ids = [r[0] for r in conn.execute(select(hub_evacuee.c.evacuee_id).where(
            hub_evacuee.c.municipality_code == host, hub_evacuee.c.registered.is_(True))).all()]
        enqueue(conn, host, {eid: "agreement" for eid in ids}, utcnow())
    return len(ids)


def _shelter_names(conn: Connection, host: str, device_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted({d for d in device_ids if d})
    if not ids:
        return {}
    return {r[0]: (r[1] or r[2]) for r in conn.execute(
        select(hub_device.c.device_id, hub_device.c.shelter_name, hub_device.c.name).where(
            hub_device.c.municipality_code == host, in_(conn, hub_device.c.device_id, ids))).all()}


_EV_COLS = ("evacuee_id", "device_id", "name", "name_kana", "birth_date_raw", "birth_date", "sex", "address",
            "household_key", "current_shelter_code", "shelter_code", "status", "registered_at", "registered")


def _evacuees(conn: Connection, host: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = {r["evacuee_id"]: dict(r) for r in conn.execute(
        select(*[hub_evacuee.c[c] for c in _EV_COLS]).where(
            hub_evacuee.c.municipality_code == host, in_(conn, hub_evacuee.c.evacuee_id, list(ids)))).mappings()}
    shelters = _shelter_names(conn, host, [r["device_id"] for r in rows.values()])
    for r in rows.values():
        r["shelter_name"] = shelters.get(r["device_id"] or "")
    return rows


def _ev_view(ev: Mapping[str, Any]) -> dict[str, Any]:
    """What a home learns about an evacuee registered at the host (kept current)."""
    return dict(ev_name=ev.get("name"), ev_name_kana=ev.get("name_kana"),
                ev_birth=ev.get("birth_date") or ev.get("birth_date_raw"), ev_sex=ev.get("sex"),
                ev_address=ev.get("address"), shelter_code=ev.get("current_shelter_code") or ev.get("shelter_code"),
                shelter_name=ev.get("shelter_name"), status=ev.get("status"), registered_at=ev.get("registered_at"))


def refresh_links(conn: Connection, host: str, homes: Sequence[str], evacuee_ids: Iterable[str], now: datetime) -> None:
    ids = sorted(set(evacuee_ids))
    set_tenant(conn, host)
    evs = _evacuees(conn, host, ids)
    for home in homes:
        set_tenant(conn, home)
        have = [r[0] for r in conn.execute(select(hub_cross_link.c.evacuee_id).where(
            hub_cross_link.c.municipality_code == home, hub_cross_link.c.host_code == host,
            in_(conn, hub_cross_link.c.evacuee_id, ids))).all()]
        for eid in have:
            if eid in evs:
                conn.execute(update(hub_cross_link).where(
                    hub_cross_link.c.municipality_code == home, hub_cross_link.c.host_code == host,
                    hub_cross_link.c.evacuee_id == eid).values(**_ev_view(evs[eid]), updated_at=now))
    set_tenant(conn, host)


# ---- matchers (one per home snapshot, built outside any transaction) ---------------------------------
@dataclass
class HomeIndex:
    records: Records
    matcher: Matcher
    restricted: set[str]


_matchers: "OrderedDict[tuple[int, str, str], HomeIndex]" = OrderedDict()
_matchers_lock = threading.Lock()


def build_index(rec: Records) -> HomeIndex:
    """The same records and keys the shelter builds (app/services/reconcile.load_matcher),
    computed here with matching/ alone from the decrypted snapshot."""
    f = {name: i for i, name in enumerate(rec.fields)}
    gaiji = rec.gaiji or None

    def tuples() -> Iterable[tuple[Any, ...]]:
        for r in rec.rows:
            fv, gv, fl, gl, alpha, town, house = stored_keys(
                r[f["family_name"]] or "", r[f["given_name"]] or "", r[f["family_name_kana"]] or "",
                r[f["given_name_kana"]] or "", r[f["alpha_name"]] or "", r[f["address"]] or "", gaiji)
            yield (str(r[f["resident_id"]]), r[f["household_id"]] or "", fl, gl, fv, gv, alpha,
                   r[f["birth_date"]] or "", r[f["sex"]] or "", town, bool(r[f["restricted"]]), house)

    from datetime import date

    index = RegistryIndex(tuples())
    matcher = Matcher(index, readings=Matcher.learn_readings(index), as_of=date.fromisoformat(rec.as_of))
    return HomeIndex(rec, matcher, registry.rows_restricted(rec))


def home_index(engine: Engine, key: DataKey, home: str) -> HomeIndex | None:
    """The matcher for a home's newest snapshot (``None`` when it has none); a few are cached."""
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, home)
    if snap is None:
        return None
    ck = (id(engine), home, snap.snapshot_id)
    with _matchers_lock:
        hit = _matchers.get(ck)
        if hit is not None:
            _matchers.move_to_end(ck)
            return hit
    built = build_index(registry.open_records(engine, key, home, snap))
    with _matchers_lock:
        _matchers[ck] = built
        while len(_matchers) > MATCHER_CACHE:
            _matchers.popitem(last=False)
    return built


# ---- the work --------------------------------------------------------------------------------
@dataclass
class RunResult:
    processed: int = 0
    linked: int = 0
    review: int = 0
    unlinked: int = 0
    none: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "RunResult") -> None:
        for k in ("processed", "linked", "review", "unlinked", "none", "skipped"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.errors.extend(other.errors)


@dataclass
class Outcome:
    decision: str  # auto | review | none
    result: MatchResult | None = None
    reasons: str = ""


_run_lock = threading.Lock()


def run_pending(engine: Engine, key: DataKey | None = None, *, limit: int = 500, rounds: int = 100) -> RunResult:
    """Do every queued job (several rounds of ``limit`` per host).  Safe to call concurrently:
    a job is only marked done at the version it was read at."""
    key = key or registry.data_key_of(engine)
    total = RunResult()
    if key is None:
        total.errors.append("no hub data key: cross-town matching waits")
        return total
    with _run_lock:
        for _ in range(rounds):
            with engine.connect() as conn:
                hosts = []
                for m in tenant_codes(conn):
                    set_tenant(conn, m)
                    if conn.execute(select(hub_crossmatch_job.c.evacuee_id).where(
                            hub_crossmatch_job.c.municipality_code == m,
                            hub_crossmatch_job.c.status == "pending").limit(1)).first():
                        hosts.append(m)
            if not hosts:
                break
            for host in hosts:
                total.add(run_host(engine, key, host, limit=limit))
    return total


def run_host(engine: Engine, key: DataKey, host: str, *, limit: int = 500) -> RunResult:
    res = RunResult()
    with engine.connect() as conn:
        set_tenant(conn, host)
        jobs = {r[0]: int(r[1]) for r in conn.execute(
            select(hub_crossmatch_job.c.evacuee_id, hub_crossmatch_job.c.version).where(
                hub_crossmatch_job.c.municipality_code == host, hub_crossmatch_job.c.status == "pending")
            .order_by(hub_crossmatch_job.c.updated_at).limit(limit)).all()}
        if not jobs:
            return res
        evs = _evacuees(conn, host, list(jobs))
        decs: dict[str, list[Any]] = {}
        for r in conn.execute(select(hub_decision.c.decision_id, hub_decision.c.evacuee_id, hub_decision.c.decision,
                                     hub_decision.c.person_key, hub_decision.c.at).where(
                hub_decision.c.municipality_code == host, in_(conn, hub_decision.c.evacuee_id, list(jobs)))).all():
            decs.setdefault(r.evacuee_id, []).append(r)
        homes = homes_for_host(conn, host)
        all_homes = homes_for_host(conn, host, active_only=False)
        names = municipality_names(conn)

    # what each job asks for
    local: set[str] = set()
    to_match: list[str] = []
    for eid in jobs:
        ev = evs.get(eid)
        if ev is None or not ev["registered"]:
            continue  # stub: the registration has not arrived yet; a later event re-queues it
        d = sorted(decs.get(eid, []), key=lambda x: (x.at, x.decision_id))
        if desired_link(d) is not None:
            local.add(eid)
            continue
        latest = d[-1].decision if d else None
        named = any(names.get(h) and names[h] in (ev["address"] or "") for h in homes)
        if homes and (latest in UNMATCHED or named):
            to_match.append(eid)

    # match outside any transaction
    results: dict[str, dict[str, Outcome]] = {eid: {} for eid in to_match}
    indexes: dict[str, HomeIndex] = {}
    staff: dict[tuple[str, str], Mapping[str, Any]] = {}  # (home, eid) -> existing row
    if to_match:
        with engine.connect() as conn:
            for home in homes:
                set_tenant(conn, home)
                for r in conn.execute(select(hub_cross_link).where(
                        hub_cross_link.c.municipality_code == home, hub_cross_link.c.host_code == host,
                        in_(conn, hub_cross_link.c.evacuee_id, to_match))).mappings():
                    staff[(home, r["evacuee_id"])] = dict(r)
        for home in homes:
            try:
                hx = home_index(engine, key, home)
            except Exception as exc:  # noqa: BLE001 - one home's broken backup must not stop the others
                res.errors.append(f"{home}: {exc}")
                continue
            if hx is None:
                continue
            indexes[home] = hx
            queries = []
            rejected: dict[str, list[str]] = {}
            for eid in to_match:
                row = staff.get((home, eid))
                if row is not None and row["decision"] == "confirmed":
                    continue
                if row is not None:
                    rejected[eid] = json.loads(row["rejected"] or "[]")
                ev = evs[eid]
                queries.append(Query(name=ev["name"] or "", name_kana=ev["name_kana"] or "",
                                     birth=ev["birth_date_raw"] or ev["birth_date"] or "", sex=ev["sex"] or "",
                                     address=ev["address"] or "", key=eid, household_key=ev["household_key"] or ""))
            named = names.get(home) or "\0"
            for r in hx.matcher.reconcile(queries, rejected=rejected):
                o = Outcome(r.decision, r)
                if r.decision == "review" and r.probability < REVIEW_FLOOR and named not in (evs[r.key]["address"] or ""):
                    o = Outcome("none", r, "; weak candidate in a registry the evacuee's address does not name")
                results[r.key][home] = o

    # one decision per evacuee across homes
    plan: dict[str, dict[str, Outcome]] = {}
    for eid, per_home in results.items():
        if any(staff.get((h, eid), {}).get("decision") == "confirmed" for h in homes):
            continue  # a home's staff already said who this is
        autos = [h for h, o in per_home.items() if o.decision == "auto"]
        reviews = [h for h, o in per_home.items() if o.decision == "review"]
        # another home stands in the way of an automatic link only with a strong candidate of its
        # own (its auto, or a review whose top candidate holds at least half the probability):
        # a weak namesake in a neighbour's registry is no reason to bother anyone
        strong = [h for h in autos + reviews if (per_home[h].result.probability if per_home[h].result else 0) >= 0.5
                  or h in autos]
        out: dict[str, Outcome] = {}
        for h, o in per_home.items():
            if o.decision == "auto" and any(x != h for x in strong):
                # never name the other municipality: its registry is none of this home's business
                out[h] = Outcome("review", o.result, "; not automatic: may also be a resident of another municipality")
            else:
                out[h] = o
        plan[eid] = out

    # write, under the host's lock
    now = utcnow()
    with engine.begin() as conn:
        hub_lock(conn, host)
        current = {r[0]: (r[1], int(r[2])) for r in conn.execute(
            select(hub_crossmatch_job.c.evacuee_id, hub_crossmatch_job.c.status, hub_crossmatch_job.c.version).where(
                hub_crossmatch_job.c.municipality_code == host, in_(conn, hub_crossmatch_job.c.evacuee_id, list(jobs))))}
        fresh = {eid for eid, v in jobs.items() if current.get(eid) == ("pending", v)}
        evs = _evacuees(conn, host, sorted(fresh))  # newest view under the lock
        existing = _rows(conn, host, all_homes, sorted(fresh & (local | set(plan))))
        notices: list[dict[str, Any]] = []
        disclosures: list[tuple[str, dict[str, Any]]] = []
        for eid in sorted(fresh):
            if eid in local:
                res.unlinked += _unlink_all(conn, host, existing, eid, now, notices, names)
            elif eid in plan:
                for home, o in sorted(plan[eid].items()):
                    kind = _apply_outcome(conn, host, home, evs[eid], o, indexes[home], now, notices, disclosures,
                                          names, existing[home].get(eid))
                    if kind:
                        setattr(res, kind, getattr(res, kind) + 1)
            else:
                res.skipped += 1
            res.processed += 1
        # audit locks are taken in one global order (by code), never before a hub lock
        for home, detail in sorted(disclosures, key=lambda x: x[0]):
            audit.record(conn, home, actor="hub:crossmatch", action="crossmatch.disclosed", detail=detail)
        set_tenant(conn, host)
        insert_notices(conn, host, notices, now)
        if fresh:
            conn.execute(update(hub_crossmatch_job).where(
                hub_crossmatch_job.c.municipality_code == host,
                in_(conn, hub_crossmatch_job.c.evacuee_id, sorted(fresh)))
                .values(status="done", updated_at=now))
    return res


def _linked_notice(home: str, names: Mapping[str, str], eid: str, decision: str, four: Mapping[str, str]) -> dict[str, Any]:
    return {"type": "crossmatch.linked", "payload": {
        "evacuee_id": eid, "home_municipality_code": home, "home_municipality_name": names.get(home),
        "label": f"住民: {names.get(home, home)}", "decision": decision, "resident": dict(four)}}


def _unlinked_notice(home: str, names: Mapping[str, str], eid: str) -> dict[str, Any]:
    return {"type": "crossmatch.unlinked", "payload": {
        "evacuee_id": eid, "home_municipality_code": home, "home_municipality_name": names.get(home)}}


def _rows(conn: Connection, host: str, homes: Sequence[str], ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{home: {evacuee: row}} of the cross links these evacuees already have (one query per home)."""
    out: dict[str, dict[str, dict[str, Any]]] = {h: {} for h in homes}
    if ids:
        for home in homes:
            set_tenant(conn, home)
            for r in conn.execute(select(hub_cross_link).where(
                    hub_cross_link.c.municipality_code == home, hub_cross_link.c.host_code == host,
                    in_(conn, hub_cross_link.c.evacuee_id, list(ids)))).mappings():
                out[home][r["evacuee_id"]] = dict(r)
    return out


def _row(conn: Connection, home: str, host: str, eid: str) -> dict[str, Any] | None:
    r = conn.execute(select(hub_cross_link).where(hub_cross_link.c.municipality_code == home,
                                                  hub_cross_link.c.host_code == host,
                                                  hub_cross_link.c.evacuee_id == eid)).mappings().first()
    return dict(r) if r is not None else None


def _upsert(conn: Connection, home: str, host: str, eid: str, existing: dict[str, Any] | None,
            values: dict[str, Any]) -> None:
    if existing is None:
        conn.execute(hub_cross_link.insert().values(municipality_code=home, host_code=host, evacuee_id=eid,
                                                    rejected="[]", **values))
    else:
        conn.execute(update(hub_cross_link).where(hub_cross_link.c.municipality_code == home,
                                                  hub_cross_link.c.host_code == host,
                                                  hub_cross_link.c.evacuee_id == eid).values(**values))


def _close_item(conn: Connection, home: str, item_id: str | None, resolution: str, by: str, now: datetime) -> None:
    if item_id:
        conn.execute(update(hub_review_item).where(
            hub_review_item.c.municipality_code == home, hub_review_item.c.item_id == item_id,
            hub_review_item.c.status == "open").values(status="resolved", resolution=resolution, resolved_by=by,
                                                      updated_at=now))


def _candidates(hx: HomeIndex, result: MatchResult) -> list[dict[str, Any]]:
    """The home's own registry rows for its staff to decide (never leaves the home)."""
    out = []
    for c in result.candidates[:5]:
        row = hx.records.by_id(c.resident_id)
        d = hx.records.as_dict(row) if row is not None else {}
        out.append({"resident_id": c.resident_id, "household_id": c.household_id,
                    "probability": round(c.probability, 6), "reasons": c.reasons(),
                    "name": "　".join(x for x in (d.get("family_name"), d.get("given_name")) if x),
                    "name_kana": " ".join(x for x in (d.get("family_name_kana"), d.get("given_name_kana")) if x),
                    "birth_date": d.get("birth_date") or "", "sex": d.get("sex") or "",
                    "address": d.get("address") or "", "restricted": bool(d.get("restricted"))})
    return out


def _taken_elsewhere(conn: Connection, home: str, host: str, eid: str, rid: str) -> bool:
    """Is this resident already linked to another evacuee (at the home's shelters or elsewhere)?"""
    own = conn.execute(select(hub_person_link.c.evacuee_id).where(
        hub_person_link.c.municipality_code == home, hub_person_link.c.resident_id == rid,
        hub_person_link.c.revoked_at.is_(None),
        hub_person_link.c.resident_municipality.is_(None) | (hub_person_link.c.resident_municipality == home))
        .limit(1)).first()
    if own is not None:
        return True
    other = conn.execute(select(hub_cross_link.c.evacuee_id).where(
        hub_cross_link.c.municipality_code == home, hub_cross_link.c.resident_id == rid,
        hub_cross_link.c.linked.is_(True),
        (hub_cross_link.c.host_code != host) | (hub_cross_link.c.evacuee_id != eid)).limit(1)).first()
    return other is not None


def _apply_outcome(conn: Connection, host: str, home: str, ev: Mapping[str, Any], o: Outcome, hx: HomeIndex,
                   now: datetime, notices: list[dict[str, Any]], disclosures: list[tuple[str, dict[str, Any]]],
                   names: Mapping[str, str], row: dict[str, Any] | None) -> str | None:
    eid = ev["evacuee_id"]
    set_tenant(conn, home)
    if row is not None and row["decision"] == "confirmed":
        return None
    r = o.result
    decision, reasons = o.decision, (r.reasons if r else "") + o.reasons
    if decision == "auto" and r is not None and r.resident_id and _taken_elsewhere(conn, home, host, eid, r.resident_id):
        decision, reasons = "review", reasons + "; resident already linked to another evacuee: possible duplicate"
    if decision == "none":
        if row is None:
            return "none"
        if row["linked"]:
            notices.append(_unlinked_notice(home, names, eid))
        _close_item(conn, home, row["item_id"], "none", "hub:crossmatch", now)
        _upsert(conn, home, host, eid, row, dict(decision="none", linked=False, resident_id=None,
                                                 probability=r.probability if r else None, reasons=reasons,
                                                 item_id=None, updated_at=now, **_ev_view(ev)))
        return "unlinked" if row["linked"] else "none"
    assert r is not None and r.resident_id
    restricted = r.resident_id in hx.restricted
    if decision == "auto":
        newly = row is None or not row["linked"] or row["resident_id"] != r.resident_id
        if row is not None:
            _close_item(conn, home, row["item_id"], "auto", "hub:crossmatch", now)
        _upsert(conn, home, host, eid, row, dict(
            decision="auto", linked=True, resident_id=r.resident_id, probability=r.probability, reasons=reasons,
            item_id=None, restricted=restricted, decided_by="hub:crossmatch",
            linked_at=now if newly else row["linked_at"], updated_at=now, **_ev_view(ev)))
        if newly:
            _disclose(home, names, eid, host, r.resident_id, "auto", hx, restricted, notices, disclosures)
        return "linked"
    # review: the home's staff decide
    if row is not None and row["linked"]:
        notices.append(_unlinked_notice(home, names, eid))
    cands = _candidates(hx, r)
    doc = {"evacuee": {"evacuee_id": eid, "host": host, "host_name": names.get(host), **_ev_view(ev)},
           "reasons": reasons, "candidates": cands}
    item_id = row["item_id"] if row is not None else None
    if item_id and conn.execute(select(hub_review_item.c.status).where(
            hub_review_item.c.municipality_code == home, hub_review_item.c.item_id == item_id)).scalar() == "open":
        conn.execute(update(hub_review_item).where(hub_review_item.c.municipality_code == home,
                                                   hub_review_item.c.item_id == item_id)
                     .values(candidates=json.dumps(doc, ensure_ascii=False), updated_at=now))
    else:
        item_id = new_row_id()
        conn.execute(hub_review_item.insert().values(
            municipality_code=home, item_id=item_id, kind="cross_match", evacuee_id=eid, field=None, status="open",
            candidates=json.dumps(doc, ensure_ascii=False), host_code=host, created_at=now, updated_at=now))
    _upsert(conn, home, host, eid, row, dict(decision="review", linked=False, resident_id=r.resident_id,
                                             probability=r.probability, reasons=reasons, item_id=item_id,
                                             restricted=restricted, updated_at=now, **_ev_view(ev)))
    return "review"


def _disclose(home: str, names: Mapping[str, str], eid: str, host: str, rid: str, decision: str, hx: HomeIndex,
              restricted: bool, notices: list[dict[str, Any]], disclosures: list[tuple[str, dict[str, Any]]]) -> None:
    if restricted:  # 閲覧制限: the home knows; the host's shelters learn nothing
        disclosures.append((home, {"evacuee_id": eid, "host": host, "resident_id": rid, "decision": decision,
                                   "disclosed": []}))
        return
    row = hx.records.by_id(rid)
    four = registry.basic_four(hx.records, row) if row is not None else {}
    notices.append(_linked_notice(home, names, eid, decision, four))
    disclosures.append((home, {"evacuee_id": eid, "host": host, "resident_id": rid, "decision": decision,
                               "disclosed": sorted(four)}))


def _unlink_all(conn: Connection, host: str, existing: Mapping[str, Mapping[str, dict[str, Any]]], eid: str,
                now: datetime, notices: list[dict[str, Any]], names: Mapping[str, str]) -> int:
    """The host's own shelter linked the evacuee to its own resident: engine links elsewhere go."""
    n = 0
    for home, rows in existing.items():
        row = rows.get(eid)
        if row is None or row["decision"] == "confirmed":
            continue
        set_tenant(conn, home)
        if row["linked"]:
            notices.append(_unlinked_notice(home, names, eid))
            n += 1
        _close_item(conn, home, row["item_id"], "local link at host", "hub:crossmatch", now)
        _upsert(conn, home, host, eid, row, dict(decision="none", linked=False, item_id=None,
                                                 reasons="linked at the host's shelter", updated_at=now))
    return n


# ---- the home's staff decide ---------------------------------------------------------------------
def resolve_review(engine: Engine, key: DataKey | None, home: str, item_id: str, *, decision: str,
                   resident_id: str | None, by: str) -> dict[str, Any]:
    """A home HQ user confirms or rejects a cross-town candidate.  Another municipality's item
    (or an unknown id) raises :class:`HubNotFound` — the same answer either way."""
    if decision not in ("confirmed", "rejected"):
        raise HubConflict("decision must be confirmed or rejected")
    with engine.connect() as conn:
        set_tenant(conn, home)
        item = conn.execute(select(hub_review_item).where(hub_review_item.c.municipality_code == home,
                                                          hub_review_item.c.item_id == item_id)).mappings().first()
    if item is None:
        raise HubNotFound("no such review item")
    if item["kind"] != "cross_match":
        raise HubConflict("field conflicts are resolved at the shelter that holds the evacuee")
    if item["status"] != "open":
        raise HubConflict("this review item is already resolved")
    doc = json.loads(item["candidates"])
    cands = {c["resident_id"]: c for c in doc.get("candidates", [])}
    rid = resident_id or (next(iter(cands)) if cands else None)
    if rid not in cands:
        raise HubConflict("resident_id must be one of the item's candidates")
    host, eid = item["host_code"], item["evacuee_id"]
    key = key or registry.data_key_of(engine)
    hx = home_index(engine, key, home) if key is not None else None
    now = utcnow()
    with engine.begin() as conn:
        hub_lock(conn, host)
        names = municipality_names(conn)
        set_tenant(conn, home)
        row = _row(conn, home, host, eid)
        still = conn.execute(select(hub_review_item.c.status).where(
            hub_review_item.c.municipality_code == home, hub_review_item.c.item_id == item_id)).scalar()
        if row is None or still != "open":
            raise HubConflict("this review item is already resolved")
        notices: list[dict[str, Any]] = []
        disclosures: list[tuple[str, dict[str, Any]]] = []
        _close_item(conn, home, item_id, decision, by, now)
        if decision == "confirmed":
            restricted = bool(cands[rid].get("restricted"))
            _upsert(conn, home, host, eid, row, dict(decision="confirmed", linked=True, resident_id=rid,
                                                     decided_by=by, item_id=item_id, restricted=restricted,
                                                     linked_at=now, updated_at=now))
            if hx is not None:
                _disclose(home, names, eid, host, rid, "confirmed", hx, restricted, notices, disclosures)
            else:  # no key at hand: the host learns only which town (and nothing for 閲覧制限)
                if not restricted:
                    notices.append(_linked_notice(home, names, eid, "confirmed", {}))
                disclosures.append((home, {"evacuee_id": eid, "host": host, "resident_id": rid,
                                           "decision": "confirmed", "disclosed": []}))
        else:
            rejected = sorted(set(json.loads(row["rejected"] or "[]")) | {rid})
            if row["linked"]:
                notices.append(_unlinked_notice(home, names, eid))
            _upsert(conn, home, host, eid, row, dict(decision="rejected", linked=False, rejected=json.dumps(rejected),
                                                     decided_by=by, item_id=None, updated_at=now))
        audit.record(conn, home, actor=by, action=f"crossmatch.{decision}",
                     detail={"item_id": item_id, "evacuee_id": eid, "host": host, "resident_id": rid})
        for h, detail in disclosures:
            audit.record(conn, h, actor=by, action="crossmatch.disclosed", detail=detail)
        set_tenant(conn, host)
        insert_notices(conn, host, notices, now)
        if decision == "rejected":  # another candidate may still be the one
            enqueue(conn, host, {eid: "rejected by home staff"}, now)
    return {"item_id": item_id, "decision": decision, "resident_id": rid}


# ---- what each side may see ------------------------------------------------------------------------
def links_of_home(conn: Connection, home: str) -> list[dict[str, Any]]:
    set_tenant(conn, home)
    return [dict(r) for r in conn.execute(select(hub_cross_link).where(hub_cross_link.c.municipality_code == home)
                                          .order_by(hub_cross_link.c.updated_at)).mappings()]


def latest_notices(conn: Connection, host: str, evacuee_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """For the host: the latest notice per evacuee (linked or unlinked) from its own feed."""
    set_tenant(conn, host)
    q = select(hub_notice.c.evacuee_id, hub_notice.c.type, hub_notice.c.payload).where(
        hub_notice.c.municipality_code == host).order_by(hub_notice.c.hub_seq)
    if evacuee_ids is not None:
        if not evacuee_ids:
            return {}
        q = q.where(in_(conn, hub_notice.c.evacuee_id, list(evacuee_ids)))
    out: dict[str, dict[str, Any]] = {}
    for eid, typ, payload in conn.execute(q).all():
        if typ == "crossmatch.linked":
            out[eid] = json.loads(payload)
        else:
            out.pop(eid, None)
    return out


def pending_jobs(engine: Engine) -> int:
    n = 0
    with engine.connect() as conn:
        for m in tenant_codes(conn):
            set_tenant(conn, m)
            n += len(conn.execute(select(hub_crossmatch_job.c.evacuee_id).where(
                hub_crossmatch_job.c.municipality_code == m, hub_crossmatch_job.c.status == "pending")).all())
    return n


__all__ = ["after_apply", "enqueue", "run_pending", "resolve_review", "links_of_home", "latest_notices",
           "LINKING_DECISIONS"]
