"""PFIF (Google Person Finder) at the hub, per municipality: sought people in, safety notes out.

The shelter's rules, not a copy of them: files are read by `app.formats.pfif`, the engine is asked
and evacuees are compared by `app.services.pfif_rules` (as `app.services.pfif` does on a laptop),
and the export is built from the same record builders and written by the same writer. Only the
rows differ: here they are the municipality's hub tables.

- **Import** (`import_pfif`): a PFIF 1.1–1.4 XML or Person Finder CSV file becomes
  `hub_sought_person` rows (the parsed person and its notes as JSON), all or nothing, audited. A
  record id names one record: importing it again changes nothing, a newer `source_date` updates
  it, a PFIF placeholder (the source withdrew it) expires it. A note about a person the hub does
  not hold yet is kept on a stub row (no name, never listed) until the person arrives.
- **Linking**: each new or changed sought person is matched against the municipality's newest
  registry backup (`sync.hub.crossmatch.home_index`: the same engine and index the shelters use;
  needs the hub data key) and against the evacuees registered at the municipality's shelters.
  Proposals and decisions are append-only `hub_sought_link` rows: `suggested` (the engine;
  `reasons` starts with its level, `auto:` or `review:`), `confirmed` / `rejected` (staff, or a
  `rejected` without a user when the engine withdraws a proposal); the newest row per (sought
  person, target) is the link's state, so every decision can be undone by another row.
- **閲覧制限 (DV等支援措置)**: a sought-person file is exactly how an abuser could look for a
  victim. Who is protected is the hub's one rule (`sync.hub.restricted`) with its publication
  widening: a resident flagged in any of the municipality's registry backups (keyed MACs,
  `hub_restricted`), or living in a registry household with one; an evacuee protected by the rule
  (withheld, care flag, linked or proposed to a flagged resident of this or another town, found
  protected by another town, or another registration of the same person is), registered together
  with one (household key), or linked to a resident of such a household. Such a target is never
  shown as a link — nor counted in an import's answer — except to an admin; deciding on such a
  link answers "not found" like a link that does not exist. Without the data key, a municipality
  whose backups flag anyone protects every resident and every evacuee linked to one.
- **Export** (`export_pfif`): evacuees registered at the municipality's shelters who consented to
  publication (様式第1号 ⑭, `consents.public` True) and are not protected as above, as PFIF 1.4
  persons with a `believed_alive` note per stay, plus a note on each sought person staff confirmed
  as one of them; `entry_date` strictly increasing, `expiry_date` set. Audited.

Every function reads and writes one municipality only (queries filter on it, and the transaction
states it for PostgreSQL's row-level security); another municipality's ids answer "not found".
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from app.formats.pfif import PfifDocument, PfifNote, parse_pfif, record_to_json, write_pfif
from app.services import pfif_desk, pfif_rules as rules
from app.services.errors import TooLarge
from app.services.pfif import DECISION_JA, MAX_FILE_BYTES, STATUS_PFIF_JA, ImportResult, read_file
from matching.dates import DateError, parse_date
from sync.errors import DataKeyError
from sync.files import atomic_path
from sync.hub import audit, crossmatch, registry
from sync.hub.apply import in_
from sync.hub.hq import parse_time, shelter_names
from sync.hub.registry import DataKey
from sync.hub.store import (
    hub_evacuee, hub_lock, hub_sought_link, hub_sought_person, hub_stay, new_row_id, set_tenant, utcnow,
)

from app.hub_pfif_rows import (  # noqa: F401 - the rows this desk reads (and tests reach)
    SUGGESTED, SHOWN, SEX_JA, _pfif_time, _level, _state, _hub_decision, _is_stub, _expired, _municipality, _Sought, _sought_rows, _link_rows, _latest, _resident_links, _evacuee_index, _Registry, _registry, Guard, _guard,
)


# ---- import -----------------------------------------------------------------------------------
def _registry_engine(engine: Engine, key: DataKey | None, m: str) -> crossmatch.HomeIndex | None:
    """The matcher over the municipality's newest backup (built outside any transaction: seconds)."""
    return crossmatch.home_index(engine, key, m) if key is not None else None


def import_file(engine: Engine, key: DataKey | None, municipality: str | None, path: Path, *, by: str,
                csv_domain: str | None = None, link: bool = True, reveal_restricted: bool = False) -> ImportResult:
    """`import_pfif` of a file on disk (refused above MAX_FILE_BYTES before it is read)."""
    path = Path(path)
    data = read_file(path)
    return import_pfif(engine, key, municipality, data, path.name, by=by, csv_domain=csv_domain, link=link,
                       reveal_restricted=reveal_restricted)


def import_pfif(engine: Engine, key: DataKey | None, municipality: str | None, data: bytes, file_name: str, *,
                by: str, csv_domain: str | None = None, link: bool = True,
                reveal_restricted: bool = False) -> ImportResult:
    """Load a PFIF XML or Person Finder CSV file (told apart by content) into one municipality's
    sought people and link them. All or nothing: a file with any problem raises PfifError (naming
    file, line and field) before anything is stored. Audited as `pfif.imported`.

    `linked_auto` / `linked_review` count only the links the caller may see: a link to a 閲覧制限
    target counts only when `reveal_restricted` (admins) — a count would tell that the file's
    person was found among the protected."""
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge(f"{file_name} is {len(data):,} bytes; at most {MAX_FILE_BYTES:,} are accepted",
                       "ファイルが大きすぎます (100MBまで)", MAX_FILE_BYTES)
    doc = parse_pfif(data, file_name, csv_domain=csv_domain)
    m = _municipality(engine, municipality)
    hx = _registry_engine(engine, key, m) if link else None
    reg = _registry(engine, key, m) if link and not reveal_restricted else None
    notes = doc.all_notes()
    res = ImportResult(file_name, doc.version, len(doc.persons), len(notes),
                       warnings=[str(w) for w in doc.warnings], warnings_ja=[w.ja() for w in doc.warnings])
    now = utcnow()
    with engine.begin() as conn:
        set_tenant(conn, m)
        hub_lock(conn, m)
        if link and hx is None and registry.latest_snapshot(conn, m) is not None:
            res.warnings.append("no hub data key: sought people were not matched against the registry backup")
            res.warnings_ja.append("データ鍵が設定されていないため、住民との照合はしていません")
        set_tenant(conn, m)
        rows = {s.person_record_id: s for s in _sought_rows(conn, m)}
        _store_persons(doc, rows, res, file_name, by)
        _store_notes(notes, rows, res)
        _write(conn, m, rows, file_name, by, now)
        if link:
            changed = set(res.sought_ids)
            res.link_rows = _link(conn, m, [s for s in rows.values() if s.sought_id in changed and not s.stub], hx, now)
            latest = _latest(_link_rows(conn, m, res.file_ids))
            if reg is not None:  # what the caller may not see is not counted either
                guard = _guard(conn, m, reg, {t for (_s, k, t) in latest if k == "resident"})
                latest = {p: r for p, r in latest.items() if not guard.target(p[1], p[2])}
            counts = Counter(_level(r) for r in latest.values() if r["decision"] == SUGGESTED)
            res.linked_auto, res.linked_review = counts["auto"], counts["review"]
        audit.record(conn, m, actor=by, action="pfif.imported", detail={
            "file": file_name, "version": res.version, "persons": res.persons, "notes": res.notes,
            "persons_new": res.persons_new, "persons_updated": res.persons_updated, "notes_new": res.notes_new,
            "notes_updated": res.notes_updated, "link_rows": res.link_rows, "sought_ids": res.sought_ids})
    return res


def _store_persons(doc: PfifDocument, rows: dict[str, _Sought], res: ImportResult, file_name: str, by: str) -> None:
    for p in doc.persons:
        rid = p.person_record_id
        row = rows.get(rid)
        if p.is_placeholder:
            res.persons_expired += 1
            if row is not None and not row.stub and parse_time(row.record.get("expiry_date")) != rules.aware(p.expiry_date):
                row.record["expiry_date"] = p.expiry_date.isoformat() if p.expiry_date else None
                row.changed = row.person_changed = True
                res.sought_ids.append(row.sought_id)
            continue
        record = record_to_json(replace(p, notes=[]))
        if row is None or row.stub:
            if row is None:
                row = rows[rid] = _Sought(new_row_id(), rid, record, [], new=True)
            row.record = record
            res.persons_new += 1
        elif rules.newer(p.source_date, parse_time(row.record.get("source_date"))):
            row.record = record
            res.persons_updated += 1
        else:
            res.persons_unchanged += 1
            res.file_ids.append(row.sought_id)
            continue
        row.changed = row.person_changed = True
        row.source_file, row.imported_by = file_name, by
        res.sought_ids.append(row.sought_id)
        res.file_ids.append(row.sought_id)


def _store_notes(notes: Sequence[PfifNote], rows: dict[str, _Sought], res: ImportResult) -> None:
    where = {n["note_record_id"]: s for s in rows.values() for n in s.notes}
    for n in notes:
        owner = where.get(n.note_record_id)
        if owner is None:
            res.notes_new += 1
        else:
            old = next(x for x in owner.notes if x["note_record_id"] == n.note_record_id)
            if not rules.newer(n.source_date, parse_time(old.get("source_date"))):
                res.notes_unchanged += 1
                continue
            res.notes_updated += 1
            owner.notes = [x for x in owner.notes if x["note_record_id"] != n.note_record_id]
            owner.changed = True  # the note may move to another person
        target = rows.get(n.person_record_id)
        if target is None:  # about a person we do not hold (yet): kept on a stub until they arrive
            target = rows[n.person_record_id] = _Sought(new_row_id(), n.person_record_id,
                                                        {"person_record_id": n.person_record_id, "stub": True}, [],
                                                        new=True)
        target.notes.append(record_to_json(n))
        target.notes.sort(key=lambda x: (x.get("source_date") or "", x["note_record_id"]))
        target.changed = True
        where[n.note_record_id] = target
    res.notes_orphan = sum(1 for n in notes if rows[n.person_record_id].stub)


def _write(conn: Connection, m: str, rows: Mapping[str, _Sought], file_name: str, by: str, now: datetime) -> None:
    for s in rows.values():
        if not s.changed:
            continue
        values: dict[str, Any] = dict(
            record=json.dumps(s.record, ensure_ascii=False, sort_keys=True),
            notes=json.dumps(s.notes, ensure_ascii=False, sort_keys=True),
            entry_date=_pfif_time(parse_time(s.record.get("entry_date"))),
            expiry_date=_pfif_time(parse_time(s.record.get("expiry_date"))), updated_at=now)
        if s.person_changed or s.new:
            values.update(source_file=s.source_file or file_name, imported_by=s.imported_by or by)
        if s.new:
            conn.execute(hub_sought_person.insert().values(municipality_code=m, sought_id=s.sought_id,
                                                           person_record_id=s.person_record_id, imported_at=now,
                                                           **values))
        else:
            conn.execute(update(hub_sought_person).where(hub_sought_person.c.municipality_code == m,
                                                         hub_sought_person.c.sought_id == s.sought_id).values(**values))


def _link(conn: Connection, m: str, persons: Sequence[_Sought], hx: crossmatch.HomeIndex | None,
          now: datetime) -> int:
    """Append the rows the engine's view of these sought people implies; returns how many."""
    if not persons:
        return 0
    evs = _evacuee_index(conn, m)
    by_person: dict[str, dict[rules.Pair, rules.LinkState]] = {}
    last_at: dict[tuple[str, str, str], datetime] = {}  # a new row must sort after the pair's newest
    for (sid, kind, tid), row in _latest(_link_rows(conn, m, [p.sought_id for p in persons])).items():
        by_person.setdefault(sid, {})[(kind, tid)] = _state(row)
        last_at[(sid, kind, tid)] = row["at"]
    engine_view = (hx.matcher, hx.records.snapshot_id) if hx is not None else None
    new = []
    for s in persons:
        latest = by_person.get(s.sought_id, {})
        expired = _expired(s.record, now)
        proposals = rules.propose(s.person(), key=s.sought_id, registry=engine_view, evacuees=evs,
                                  refused_pairs=rules.refused(latest), expired=expired, today=now)
        for (kind, tid), prop in rules.plan_links(proposals, latest, expired=expired):
            decision, reasons = _hub_decision(prop)
            new.append(dict(municipality_code=m, link_id=new_row_id(), sought_id=s.sought_id, target_kind=kind,
                            target_id=tid, decision=decision, reasons=reasons, by_user=None,
                            at=pfif_desk.after(last_at.get((s.sought_id, kind, tid)), now),
                            score=round(prop.score, 6) if prop.score is not None else None))
    if new:
        conn.execute(hub_sought_link.insert(), new)
    return len(new)


def relink(engine: Engine, key: DataKey | None, municipality: str | None, *, by: str) -> int:
    """Match every sought person again (new evacuees arrived, or a new registry backup); audited."""
    m = _municipality(engine, municipality)
    hx = _registry_engine(engine, key, m)
    now = utcnow()
    with engine.begin() as conn:
        set_tenant(conn, m)
        hub_lock(conn, m)
        persons = [s for s in _sought_rows(conn, m) if not s.stub]
        n = _link(conn, m, persons, hx, now)
        audit.record(conn, m, actor=by, action="pfif.relinked", detail={"persons": len(persons), "link_rows": n})
    return n


# ---- what the desk sees -----------------------------------------------------------------------
def _resident_view(reg: _Registry, resident_id: str) -> dict[str, Any]:
    if reg.records is None:
        return {"name": "（データ鍵がないため表示できません）" if reg.snapshot is not None else "（見つかりません）"}
    row = reg.records.by_id(resident_id)
    if row is None:
        return {"name": "（見つかりません）"}
    d = reg.records.as_dict(row)
    return {"resident_id": resident_id, "household_id": d.get("household_id") or "",
            "name": "　".join(x for x in (d.get("family_name"), d.get("given_name")) if x),
            "name_kana": " ".join(x for x in (d.get("family_name_kana"), d.get("given_name_kana")) if x),
            "alpha_name": d.get("alpha_name") or "", "birth_date": d.get("birth_date") or "",
            "sex": SEX_JA.get(d.get("sex") or "", ""), "address": d.get("address") or ""}


def _evacuee_views(conn: Connection, m: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    shelters = shelter_names(conn, m)
    return {r["evacuee_id"]: {
        "evacuee_id": r["evacuee_id"], "external_key": r["external_key"], "name": r["name"] or "",
        "name_kana": r["name_kana"] or "", "birth_date": r["birth_date"] or r["birth_date_raw"] or "",
        "sex": SEX_JA.get(r["sex"] or "", r["sex"] or ""), "status": r["status"],
        "shelter_code": r["current_shelter_code"] or r["shelter_code"], "shelter_name": shelters.get(r["device_id"] or "")}
        for r in conn.execute(select(hub_evacuee).where(hub_evacuee.c.municipality_code == m,
                                                        in_(conn, hub_evacuee.c.evacuee_id, list(ids)))).mappings()}


def _link_view(row: Mapping[str, Any], target: dict[str, Any], restricted: bool) -> dict[str, Any]:
    engine_level = _level(row) if row["decision"] == SUGGESTED else None
    shown = engine_level if row["decision"] == SUGGESTED else row["decision"]
    return {"link_id": row["link_id"], "target_kind": row["target_kind"], "target_id": row["target_id"],
            "decision": row["decision"], "engine": engine_level, "decision_ja": DECISION_JA.get(shown or "", shown),
            "score": row["score"], "reasons": row["reasons"], "by_user": row["by_user"],
            "at": row["at"].isoformat(timespec="seconds") if row["at"] else None, "restricted": restricted,
            "target": target}


def _latest_status(notes: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """Person Finder's rule: the status of the newest note (by source_date) that has one."""
    best: Mapping[str, Any] | None = None
    for n in notes:
        if n.get("status") and (best is None or rules.newer(parse_time(n.get("source_date")), parse_time(best.get("source_date")))):
            best = n
    return (best["status"], best.get("source_date")) if best else ("", None)


def _sought_view(s: _Sought, now: datetime) -> dict[str, Any]:
    p = s.record
    status, status_at = _latest_status(s.notes)
    return {
        "sought_id": s.sought_id, "person_record_id": s.person_record_id,
        "name": rules.display_name(s.person()), "alternate_names": p.get("alternate_names") or "",
        "sex": p.get("sex") or "", "date_of_birth": p.get("date_of_birth") or "", "age": p.get("age") or "",
        "home": rules.address(s.person()), "description": p.get("description") or "",
        "author_name": p.get("author_name") or "", "source_name": p.get("source_name") or "",
        "source_date": p.get("source_date"), "expiry_date": p.get("expiry_date"), "expired": _expired(p, now),
        "status": status, "status_ja": STATUS_PFIF_JA.get(status, ""), "status_at": status_at,
        "source_file": s.source_file, "imported_by": s.imported_by,
        "imported_at": s.imported_at.isoformat(timespec="seconds") if s.imported_at else None,
        "notes": [{k: n.get(k) for k in ("note_record_id", "author_name", "source_date", "status", "author_made_contact",
                                         "last_known_location", "text", "linked_person_record_id")} for n in s.notes],
        "links": [], "decided": []}


def sought_list(engine: Engine, key: DataKey | None, municipality: str | None, *, reveal_restricted: bool,
                q: str = "", only: str = "", include_expired: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    """Sought people (newest first) with their current links (suggested or confirmed) and the staff
    decisions that can be undone. Links touching 閲覧制限 are left out unless `reveal_restricted`
    (admins), and then flagged. `only`: "" (all), "linked" or "open" (without a current link)."""
    m = _municipality(engine, municipality)
    reg = _registry(engine, key, m)
    now = utcnow()
    with engine.connect() as conn:
        set_tenant(conn, m)
        persons = [s for s in _sought_rows(conn, m) if not s.stub and (include_expired or not _expired(s.record, now))]
        if q.strip():
            want = q.strip().lower()
            persons = [s for s in persons if want in " ".join(
                str(s.record.get(k) or "") for k in ("full_name", "given_name", "family_name", "alternate_names",
                                                     "person_record_id", "home_city")).lower()]
        latest = _latest(_link_rows(conn, m, [s.sought_id for s in persons]))
        guard = _guard(conn, m, reg, {t for (_s, k, t) in latest if k == "resident"})
        evacuees = _evacuee_views(conn, m, sorted({t for (_s, k, t) in latest if k == "evacuee"}))
    views = {s.sought_id: _sought_view(s, now) for s in persons}
    for (sid, kind, tid), row in latest.items():
        protected = guard.target(kind, tid)
        if protected and not reveal_restricted:
            continue
        target = {"kind": kind, "kind_ja": "住民" if kind == "resident" else "避難者", "id": tid,
                  **(_resident_view(reg, tid) if kind == "resident" else evacuees.get(tid) or {"name": "（見つかりません）"})}
        lv = _link_view(row, target, protected)
        if row["decision"] in SHOWN:
            views[sid]["links"].append(lv)
        if row["by_user"] and row["decision"] in rules.STAFF_FINAL:
            views[sid]["decided"].append(lv)
    out = []
    for s in persons:
        v = views[s.sought_id]
        v["links"].sort(key=lambda lv: ({"confirmed": 0, "auto": 1, "review": 2}.get(lv["engine"] or lv["decision"], 3),
                                        -(lv["score"] or 0.0)))
        if only == "linked" and not v["links"] or only == "open" and v["links"]:
            continue
        out.append(v)
    return out[:max(1, limit)]


def record_view(engine: Engine, municipality: str | None, *, by: str, count: int, where: str) -> None:
    """A look at sought people (personal data) in the municipality's audit log."""
    m = _municipality(engine, municipality)
    with engine.begin() as conn:
        audit.record(conn, m, actor=by, action="pfif.viewed", detail={"where": where, "count": count})


def decide_link(engine: Engine, key: DataKey | None, municipality: str | None, sought_id: str, target_kind: str,
                target_id: str, decision: str, *, by: str, reveal_restricted: bool = False) -> dict[str, Any]:
    """Staff confirm or reject a proposed link, or undo their last decision on it: a new row,
    audited (`pfif_desk.decide_link`, the same rule as the shelter's desk). A link the caller may not
    see (閲覧制限), or of another municipality, is not found (NotFound, 404, worded as for a link
    that does not exist); a decision the link's state refuses is Conflict or AlreadyDone (409)."""
    pfif_desk.check_decision(decision, target_kind)
    m = _municipality(engine, municipality)
    reg = _registry(engine, key, m)
    with engine.begin() as conn:
        set_tenant(conn, m)
        hub_lock(conn, m)
        return pfif_desk.decide_link(HubPfifLinks(conn, m, reg, by), sought_id, target_kind, target_id, decision,
                                     reveal_restricted=reveal_restricted)


class HubPfifLinks:
    """`pfif_desk.PfifLinkStore` over one municipality's rows, in the caller's transaction (which
    holds the tenant's write lock). The engine's proposals are stored as `suggested` rows whose
    reasons start with their level (auto: / review:)."""

    def __init__(self, conn: Connection, m: str, reg: _Registry, by: str) -> None:
        self.conn, self.m, self.reg, self.by = conn, m, reg, by

    def history(self, sought_id: str, target_kind: str, target_id: str) -> list[pfif_desk.LinkRow]:
        person = _sought_rows(self.conn, self.m, [sought_id])
        if not person or person[0].stub:
            return []
        return [pfif_desk.LinkRow(_state(r).decision, r["by_user"] or "", r["at"], r)
                for r in _link_rows(self.conn, self.m, [sought_id])
                if r["target_kind"] == target_kind and r["target_id"] == target_id]

    def hidden(self, target_kind: str, target_id: str) -> bool:
        residents = [target_id] if target_kind == "resident" else []
        return _guard(self.conn, self.m, self.reg, residents).target(target_kind, target_id)

    def write(self, sought_id: str, target_kind: str, target_id: str, *, decision: str, last: pfif_desk.LinkRow,
              base: pfif_desk.LinkRow | None, at: datetime) -> dict[str, Any]:
        prev, b = last.row, (base.row if base is not None else None)
        if decision == "undo":
            why = str(b["reasons"]).split(":", 1)[1].strip() if b and ":" in str(b["reasons"]) else ""
            new = dict(decision=SUGGESTED, score=b["score"] if b else prev["score"],
                       reasons=f"{base.decision if base else 'review'}: undo of {prev['decision']} by {prev['by_user']}"
                       + (f"; {why}" if why else ""))
        else:
            new = dict(decision=decision, score=prev["score"], reasons=f"{decision} by staff {self.by}")
        row = dict(municipality_code=self.m, link_id=new_row_id(), sought_id=sought_id, target_kind=target_kind,
                   target_id=target_id, by_user=self.by, at=at, **new)
        self.conn.execute(hub_sought_link.insert().values(**row))
        audit.record(self.conn, self.m, actor=self.by, action="pfif.link_decided", detail={
            "sought_id": sought_id, "target_kind": target_kind, "target_id": target_id, "decision": decision,
            "link_id": row["link_id"], "now": row["decision"]})
        return {"link_id": row["link_id"], "sought_id": sought_id, "target_kind": target_kind, "target_id": target_id,
                "decision": row["decision"], "by_user": self.by, "at": at.isoformat()}


# ---- export -----------------------------------------------------------------------------------
@dataclass
class HubPfifExport:
    municipality_code: str
    persons: int
    notes: int
    no_consent: int  # registered evacuees left out: consent ⑭ not given
    protected: int  # left out for 閲覧制限 (whatever their consent)
    evacuee_ids: list[str]
    path: Path | None = None
    data: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        return {"municipality_code": self.municipality_code, "persons": self.persons, "notes": self.notes,
                "no_consent": self.no_consent, "protected": self.protected,
                "file": str(self.path) if self.path else None}


def _age(row: Mapping[str, Any], today: datetime) -> str:
    day = None
    if row["birth_date"]:
        try:
            day = date.fromisoformat(str(row["birth_date"])[:10])
        except ValueError:
            day = None
    if day is not None:
        return rules.age_text(day, None, None, today)
    try:
        pd = parse_date(row["birth_date_raw"] or "", today=today.date())
    except DateError:
        return ""
    return rules.age_text(pd.value if pd.kind == "day" else None, pd.year_min, pd.year_max, today)


def _split(name: str) -> tuple[str, str]:
    """(family, given) when the name was typed as exactly two words, else nothing is guessed."""
    parts = name.replace("　", " ").split()
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


def _source_date(row: Mapping[str, Any], stays: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When the shelter last learned something about the evacuee (registration, an edit, a stay)."""
    times = [parse_time(row["registered_at"])]
    try:
        prov = json.loads(row["provenance"] or "{}")
    except ValueError:
        prov = {}
    times += [parse_time(v[0]) for v in prov.values() if isinstance(v, list) and v]
    times += [parse_time(st["at"]) for st in stays]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def build_export(engine: Engine, key: DataKey | None, municipality: str | None, *, expiry_days: int | None = None,
                 now: datetime | None = None) -> tuple[PfifDocument, HubPfifExport]:
    """The PFIF 1.4 document of one municipality's evacuees who may be published (not audited)."""
    m = _municipality(engine, municipality)
    reg = _registry(engine, key, m)
    if reg.snapshot is not None and reg.records is None:
        raise DataKeyError("the hub has no data key configured: 閲覧制限 in the registry backup cannot be checked, "
                           "so nothing is published")
    now = rules.second(now, utcnow())
    expiry = now + timedelta(days=expiry_days if expiry_days is not None else rules.default_expiry_days())
    with engine.connect() as conn:
        set_tenant(conn, m)
        guard = _guard(conn, m, reg)
        rows = [dict(r) for r in conn.execute(select(hub_evacuee).where(
            hub_evacuee.c.municipality_code == m, hub_evacuee.c.registered.is_(True))
            .order_by(hub_evacuee.c.registered_at, hub_evacuee.c.evacuee_id)).mappings()]
        shelters = shelter_names(conn, m)
        consented, no_consent, protected = [], 0, 0
        for r in rows:
            try:
                public = json.loads(r["consents"] or "{}").get("public") is True
            except (ValueError, AttributeError):
                public = False
            if r["evacuee_id"] in guard.evacuees:
                protected += 1
            elif not public:
                no_consent += 1
            elif r["name"] or r["name_kana"]:
                consented.append(r)
        ids = [r["evacuee_id"] for r in consented]
        stays: dict[str, list[dict[str, Any]]] = {}
        if ids:
            for st in conn.execute(select(hub_stay).where(hub_stay.c.municipality_code == m,
                                                          in_(conn, hub_stay.c.evacuee_id, ids))
                                   .order_by(hub_stay.c.at, hub_stay.c.stay_id)).mappings():
                stays.setdefault(st["evacuee_id"], []).append(dict(st))
        confirmed = [r for r in _latest(_link_rows(conn, m)).values() if r["decision"] == "confirmed"]
        sought = {s.sought_id: s for s in _sought_rows(conn, m, sorted({r["sought_id"] for r in confirmed}))}
        resident_of = _resident_links(conn, m)
    domain = rules.record_domain_for_code(m)
    doc = PfifDocument("1.4")
    ours: dict[str, str] = {}
    shelter_of: dict[str, str] = {}
    for r in consented:
        eid = r["evacuee_id"]
        pid = ours[eid] = f"{domain}/{eid}"
        shelter = shelter_of[eid] = shelters.get(r["device_id"] or "", "") or (r["shelter_code"] or "")
        family, given = _split(r["name"] or "")
        person = rules.evacuee_person(
            pid, expiry=expiry, shelter_name=shelter,
            source_date=rules.second(_source_date(r, stays.get(eid, [])), now),
            name=r["name"] or r["name_kana"], given_name=given, family_name=family, kana=r["name_kana"] or "",
            sex=r["sex"] or "", age=_age(r, now))
        for st in stays.get(eid, []):
            at = rules.second(parse_time(st["at"]), now)
            person.notes.append(rules.stay_note(domain, st["stay_id"], pid, st["kind"],
                                                shelters.get(st["device_id"] or "", "") or shelter, at))
        if not person.notes:
            person.notes.append(rules.registered_note(domain, eid, pid, shelter,
                                                      rules.second(parse_time(r["registered_at"]), now)))
        doc.persons.append(person)
    ev_of_resident: dict[str, str] = {}
    for eid in ours:
        if eid in resident_of:
            ev_of_resident.setdefault(resident_of[eid], eid)
    for row in confirmed:
        eid = row["target_id"] if row["target_kind"] == "evacuee" else ev_of_resident.get(row["target_id"], "")
        s = sought.get(row["sought_id"])
        if eid not in ours or s is None or s.stub:
            continue
        doc.notes.append(rules.found_note(domain, row["link_id"], s.person_record_id, ours[eid], shelter_of[eid],
                                          rules.second(row["at"], now)))
    rules.stamp_entry_dates(doc, now)
    return doc, HubPfifExport(m, len(doc.persons), len(doc.all_notes()), no_consent, protected, list(ours))


def _audit_export(engine: Engine, res: HubPfifExport, *, by: str, file: str, expiry_days: int | None) -> None:
    with engine.begin() as conn:
        audit.record(conn, res.municipality_code, actor=by, action="export.pfif", detail={
            "format": "pfif", "file": file, "persons": res.persons, "notes": res.notes,
            "no_consent": res.no_consent, "protected": res.protected,
            "expiry_days": expiry_days or rules.default_expiry_days(), "evacuees": res.evacuee_ids})


def export_bytes(engine: Engine, data_key: DataKey | None, municipality: str | None, *, by: str,
                 expiry_days: int | None = None, file: str = "pfif.xml") -> HubPfifExport:
    """The export as bytes (`.data`), audited — for the HTTP route."""
    doc, res = build_export(engine, data_key, municipality, expiry_days=expiry_days)
    res.data = write_pfif(doc)
    _audit_export(engine, res, by=by, file=file, expiry_days=expiry_days)
    return res


def export_pfif(engine: Engine, data_key: DataKey | None, municipality: str | None, out: Path, *, by: str,
                expiry_days: int | None = None) -> HubPfifExport:
    """Write one municipality's publishable evacuees as a PFIF 1.4 file Person Finder accepts
    (`anpi hub export anpi-list --format pfif`, `anpi hub pfif export`). Written atomically; the
    export is audited before the file appears (the record of a disclosure must not be lost)."""
    out = Path(out)
    doc, res = build_export(engine, data_key, municipality, expiry_days=expiry_days)
    with atomic_path(out) as tmp:  # the file appears only once its audit entry is written
        tmp.write_bytes(write_pfif(doc))
        _audit_export(engine, res, by=by, file=out.name, expiry_days=expiry_days)
    res.path = out
    return res
