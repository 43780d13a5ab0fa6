"""PFIF (Google Person Finder): sought persons (捜索依頼) in, safety notes out.

Import: a PFIF XML or Person Finder CSV file becomes `SoughtPerson` / `SoughtNote` rows, in one
transaction and audited. A record id identifies a record across files: importing the same
records again changes nothing, a newer `source_date` updates them. Each imported person is then
matched — against the newest registry snapshot by the reconciliation engine (the same query and
decision rules as `anpi match`), and against this database's evacuees by name and birth (the
matching package's normalisation) — and every proposal is written as an append-only `SoughtLink`.
The engine writes `auto` only when it would link an evacuee automatically; a link to an evacuee
is `auto` only when that evacuee and the sought person point the engine at the same resident;
everything else is `review`. Staff confirm or reject a link, and can undo either: each is a new
row, the newest row per (sought person, target) is the current state.

閲覧制限 (DV等支援措置): a sought-person file is exactly how an abuser could look for a victim,
so a link to a restricted resident — or to an evacuee linked to one, or travelling with one — is
never shown to a role without the "restricted" permission, not even as a placeholder.

Export: evacuees who consented to publication (様式第1号 ⑭ `consent_public`) as PFIF 1.4 persons
with one `believed_alive` note per stay event, plus a note on each sought person a staff member
confirmed as one of them. Never a person linked to a 閲覧制限 resident, nor anyone of their
household.

The rules that do not depend on SQLite (the engine's query, the evacuee comparison, which link
rows a proposal writes, how an evacuee becomes a PFIF person) live in `app.services.pfif_rules`,
shared with the hub (`app.hub_pfif`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from app.formats.pfif import PfifDocument, PfifNote, PfifPerson, parse_pfif, record_domain, write_pfif
from app.ids import aware as _aware, utcnow
from app.models import Evacuee, MatchDecision, RegistrySnapshot, Resident, Shelter, SoughtLink, SoughtNote, SoughtPerson, StayEvent
from app.services import audit, disclosure, pfif_desk
from app.services.errors import InvalidInput, NotFound
from app.services.pfif_desk import DECISION_JA, TARGET_KINDS  # noqa: F401 - the faces read them here
from app.services.evacuees import STATUS_JA, full_name, resident_display
from app.services.reconcile import current_matcher
from app.services.registry import newest_snapshot
from app.services.pfif_rules import (STAFF_FINAL, EvacueeIndex, EvacueeTyped, LinkState, age_text,
                                     default_expiry_days, display_name, evacuee_person, found_note, plan_links,
                                     propose, record_domain_for_code, registered_note, stamp_entry_dates, stay_note)
from app.services.pfif_rules import newer as _newer, refused as _refused
from app.services.pfif_rules import sought_query as _sought_query
from matching.engine import Matcher
from matching.query import Query
from matching.registry_index import RegistryIndex
from sync.files import atomic_path

MAX_FILE_BYTES = 100 * 1024 * 1024
CURRENT = ("auto", "review", "confirmed")  # what a link that is shown may be
STATUS_PFIF_JA = {"information_sought": "情報を求めています", "is_note_author": "本人による書き込み",
                  "believed_alive": "生存情報あり", "believed_missing": "行方不明", "believed_dead": "死亡情報あり"}
_CHUNK = 500


def _name(by_user: Any) -> str:
    """A staff member's name from a Staff/CurrentUser-like object or a plain string."""
    return str(getattr(by_user, "name", None) or by_user or "")


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


# --- import -----------------------------------------------------------------------------------

@dataclass
class ImportResult:
    file: str
    version: str  # 1.1 … 1.4, or csv
    persons: int  # person records in the file
    notes: int  # note records in the file
    persons_new: int = 0
    persons_updated: int = 0
    persons_unchanged: int = 0
    persons_expired: int = 0  # PFIF placeholders: the source withdrew the record
    notes_new: int = 0
    notes_updated: int = 0
    notes_unchanged: int = 0
    notes_orphan: int = 0  # notes about a person this database does not hold (kept)
    linked_auto: int = 0  # current links of this file's persons, after linking
    linked_review: int = 0
    link_rows: int = 0  # SoughtLink rows written by this import
    sought_ids: list[str] = field(default_factory=list)  # new or updated (these were linked)
    file_ids: list[str] = field(default_factory=list)  # every sought person the file names
    warnings: list[str] = field(default_factory=list)
    warnings_ja: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("file", "version", "persons", "notes", "persons_new", "persons_updated",
                                              "persons_unchanged", "persons_expired", "notes_new", "notes_updated",
                                              "notes_unchanged", "notes_orphan", "linked_auto", "linked_review",
                                              "link_rows", "warnings")}


_PERSON_ATTRS = ("source_name", "author_name", "full_name", "given_name", "family_name", "alternate_names", "sex",
                 "date_of_birth", "age", "home_street", "home_neighborhood", "home_city", "home_state",
                 "home_postal_code", "home_country", "description", "photo_url")


def _fill_person(row: SoughtPerson, p: PfifPerson, version: str, file_name: str) -> None:
    for attr in _PERSON_ATTRS:
        setattr(row, attr, getattr(p, attr))
    row.source_date, row.entry_date, row.expiry_date = p.source_date, p.entry_date, p.expiry_date
    row.pfif_version, row.source_file = version, file_name
    row.raw = {"pfif_version": version, "line": p.line, "fields": dict(p.raw)}


def _fill_note(row: SoughtNote, n: PfifNote, version: str, file_name: str) -> None:
    row.person_record_id, row.linked_person_record_id = n.person_record_id, n.linked_person_record_id
    row.author_name, row.source_date, row.entry_date = n.author_name, n.source_date, n.entry_date
    row.status, row.author_made_contact = n.status, n.author_made_contact
    row.last_known_location, row.text, row.source_file = n.last_known_location, n.text, file_name
    row.raw = {"pfif_version": version, "line": n.line, "fields": dict(n.raw)}


def _source(record_id: str) -> str:
    return record_domain(record_id) or "-"


def read_file(path: Path) -> bytes:
    """A PFIF / Person Finder file's bytes, refused above MAX_FILE_BYTES before it is read (shelter
    and hub imports alike)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidInput(f"{path.name} is {size:,} bytes; at most {MAX_FILE_BYTES:,} are accepted",
                               "ファイルが大きすぎます (100MBまで)", "file")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", f"ファイルを読めません: {path.name}", "file") from None


def import_pfif(session: Session, path: Path, *, by_user: Any, screen: str = "cli: anpi pfif import",
                csv_domain: str | None = None, link: bool = True, reveal_restricted: bool = False) -> ImportResult:
    """Load a PFIF XML or Person Finder CSV file (told apart by content) and link its persons.

    All or nothing: a file with any problem raises PfifError (a FileFormatError naming file, line and
    field) before anything is stored. Commits the session. `by_user`: a name or a Staff-like object
    (the audit log records its id and role too). `linked_auto` / `linked_review` count only the links
    the caller may see: a link to a 閲覧制限 target counts only when `reveal_restricted` (a role with
    the "restricted" permission) — the count would tell that the person was found among the protected.
    """
    path = Path(path)
    data = read_file(path)
    doc = parse_pfif(data, path.name, csv_domain=csv_domain)
    # the engine first: on the shelter's single SQLite connection it cannot be built once this
    # session holds the connection (see _registry_matcher)
    registry = _registry_matcher(session) if link else None
    try:
        result = _store(session, doc, path.name, _name(by_user))
        if link:
            persons = [session.get(SoughtPerson, sid) for sid in result.sought_ids]
            result.link_rows = len(link_sought(session, [p for p in persons if p is not None], registry=registry))
            current = current_links(session, result.file_ids)
            shown = [lk for links in current.values() for lk in links]
            if not reveal_restricted:
                hidden = _protected(session, {(lk.target_kind, lk.target_id) for lk in shown})
                shown = [lk for lk in shown if (lk.target_kind, lk.target_id) not in hidden]
            counts = Counter(lk.decision for lk in shown)
            result.linked_auto, result.linked_review = counts["auto"], counts["review"]
        audit.record(session, by_user, "pfif_import", screen, [f"sought:{sid}" for sid in result.sought_ids], {
            "file": path.name, "version": result.version, "persons": result.persons, "notes": result.notes,
            "persons_new": result.persons_new, "persons_updated": result.persons_updated,
            "notes_new": result.notes_new, "notes_updated": result.notes_updated, "link_rows": result.link_rows})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return result


def _store(session: Session, doc: PfifDocument, file_name: str, by: str) -> ImportResult:
    notes = doc.all_notes()
    res = ImportResult(file_name, doc.version, len(doc.persons), len(notes),
                       warnings=[str(w) for w in doc.warnings], warnings_ja=[w.ja() for w in doc.warnings])
    now = utcnow()
    touched: dict[str, SoughtPerson] = {}  # record id → row whose status may need refreshing
    for p in doc.persons:
        row = session.exec(select(SoughtPerson).where(SoughtPerson.source == _source(p.person_record_id),
                                                      SoughtPerson.pfif_record_id == p.person_record_id)).first()
        if p.is_placeholder:
            res.persons_expired += 1
            if row is not None and row.expiry_date != p.expiry_date:
                row.expiry_date, row.updated_at = p.expiry_date, now
                session.add(row)
                res.sought_ids.append(row.id)
            continue
        if row is None:
            row = SoughtPerson(source=_source(p.person_record_id), pfif_record_id=p.person_record_id, imported_by=by)
            _fill_person(row, p, doc.version, file_name)
            res.persons_new += 1
        elif _newer(p.source_date, row.source_date):
            _fill_person(row, p, doc.version, file_name)
            row.updated_at, row.imported_by = now, by
            res.persons_updated += 1
        else:
            res.persons_unchanged += 1
            touched[row.pfif_record_id] = row
            res.file_ids.append(row.id)
            continue
        session.add(row)
        session.flush()
        touched[row.pfif_record_id] = row
        res.sought_ids.append(row.id)
        res.file_ids.append(row.id)
    changed_notes: set[str] = set()
    for n in notes:
        row_n = session.exec(select(SoughtNote).where(SoughtNote.source == _source(n.note_record_id),
                                                      SoughtNote.note_record_id == n.note_record_id)).first()
        if row_n is None:
            row_n = SoughtNote(source=_source(n.note_record_id), note_record_id=n.note_record_id, imported_by=by)
            res.notes_new += 1
        elif _newer(n.source_date, row_n.source_date):
            changed_notes.add(row_n.person_record_id)  # the note may have moved to another person
            res.notes_updated += 1
        else:
            res.notes_unchanged += 1
            continue
        _fill_note(row_n, n, doc.version, file_name)
        session.add(row_n)
        changed_notes.add(n.person_record_id)
    session.flush()
    for rid in changed_notes - set(touched):
        row = session.exec(select(SoughtPerson).where(SoughtPerson.pfif_record_id == rid)).first()
        if row is not None:
            touched[rid] = row
    known = set(touched) | {rid for chunk in _chunks(sorted({n.person_record_id for n in notes}))
                            for rid in session.exec(select(SoughtPerson.pfif_record_id)
                                                    .where(SoughtPerson.pfif_record_id.in_(chunk)))}  # type: ignore[attr-defined]
    res.notes_orphan = sum(1 for n in notes if n.person_record_id not in known)
    _refresh_status(session, list(touched.values()))
    return res


def _refresh_status(session: Session, persons: list[SoughtPerson]) -> None:
    """Person Finder's rule: the status of the newest note (by source_date) that has one."""
    by_rid = {p.pfif_record_id: p for p in persons}
    best: dict[str, SoughtNote] = {}
    for chunk in _chunks(sorted(by_rid)):
        for n in session.exec(select(SoughtNote).where(SoughtNote.person_record_id.in_(chunk),  # type: ignore[attr-defined]
                                                       SoughtNote.status != "")):
            cur = best.get(n.person_record_id)
            if cur is None or _newer(n.source_date, cur.source_date):
                best[n.person_record_id] = n
    for rid, p in by_rid.items():
        n = best.get(rid)
        status, at = (n.status, n.source_date) if n else ("", None)
        if p.latest_status != status or _aware(p.latest_status_at) != _aware(at):
            p.latest_status, p.latest_status_at = status, at
            session.add(p)


# --- linking ----------------------------------------------------------------------------------

RegistryEngine = tuple[Matcher, RegistrySnapshot]

_REGISTRY_SQL = ("SELECT resident_id, household_id, k_family_kana, k_given_kana, k_family_variant, k_given_variant, "
                 "k_alpha, COALESCE(birth_date, ''), sex, k_town, restricted, k_house FROM resident "
                 "WHERE snapshot_id = :sid")


def _registry_matcher(session: Session) -> RegistryEngine | None:
    """The engine for the newest snapshot, or None before the first registry import.

    The shelter's SQLite engine has exactly one pooled connection. The cached engine
    (`reconcile.current_matcher`) borrows it, which is only possible while this session does not
    hold it; inside an open transaction the index is built from the session's own connection
    instead (the same query as `reconcile.load_matcher`, not cached).
    """
    if not session.in_transaction():
        try:
            return current_matcher(session.get_bind())  # type: ignore[arg-type]
        except NotFound:
            return None
    snap = newest_snapshot(session)
    if snap is None:
        return None
    rows = session.execute(text(_REGISTRY_SQL), {"sid": snap.id})
    index = RegistryIndex(rows)
    return Matcher(index, readings=Matcher.learn_readings(index), as_of=snap.as_of), snap


def sought_query(p: SoughtPerson) -> Query:
    """What the engine is asked: the same Query an evacuee typed at intake would give."""
    return _sought_query(p, p.id)


def _evacuee_index(session: Session) -> EvacueeIndex:
    """Every evacuee in this database with the matching keys of what was typed at intake."""
    rows = list(session.exec(select(Evacuee).order_by(Evacuee.created_at, Evacuee.id)))
    dec = _latest_decisions(session)
    return EvacueeIndex(
        (EvacueeTyped(e.id, e.name_raw or " ".join(x for x in (e.family_name, e.given_name) if x),
                      e.name_kana_raw or e.name_kana, e.birth_raw, e.sex_raw or e.sex) for e in rows),
        {ev_id: d.resident_id for ev_id, d in dec.items() if d.decision in ("auto", "confirmed") and d.resident_id})


def _latest_decisions(session: Session) -> dict[str, MatchDecision]:
    return {d.evacuee_id: d for d in session.exec(select(MatchDecision).order_by(MatchDecision.at, MatchDecision.id))}


def _link_rows(session: Session, sought_ids: Sequence[str] | None = None) -> list[SoughtLink]:
    q = select(SoughtLink).order_by(SoughtLink.at, SoughtLink.id)
    if sought_ids is None:
        return list(session.exec(q))
    out: list[SoughtLink] = []
    for chunk in _chunks(list(sought_ids)):
        out.extend(session.exec(q.where(SoughtLink.sought_id.in_(chunk))))  # type: ignore[attr-defined]
    out.sort(key=lambda r: (_aware(r.at), r.id))
    return out


def _latest_pairs(rows: Iterable[SoughtLink]) -> dict[tuple[str, str, str], SoughtLink]:
    return {(r.sought_id, r.target_kind, r.target_id): r for r in rows}


def _expired(p: SoughtPerson, now: datetime) -> bool:
    exp = _aware(p.expiry_date)
    return exp is not None and exp <= now


def link_sought(session: Session, persons: Sequence[SoughtPerson], *, registry: RegistryEngine | None = None,
                use_registry: bool = True) -> list[SoughtLink]:
    """Propose links for these sought persons; returns the rows written (in the caller's transaction).

    A row is written only where the engine's view changed; a link a staff member confirmed or
    rejected is left alone, and a link the engine no longer proposes is withdrawn by a
    `rejected` row without a user.
    """
    if registry is None and use_registry:
        registry = _registry_matcher(session)
    by_person: dict[str, dict[tuple[str, str], SoughtLink]] = defaultdict(dict)
    for (sid, k, t), row in _latest_pairs(_link_rows(session, [p.id for p in persons])).items():
        by_person[sid][(k, t)] = row
    evs = _evacuee_index(session)
    engine = (registry[0], registry[1].id) if registry is not None else None  # links keep the snapshot id
    now = utcnow()
    new: list[SoughtLink] = []
    for p in persons:
        latest = {pair: LinkState(row.decision, row.by_user, row.score, row.snapshot_id)
                  for pair, row in by_person.get(p.id, {}).items()}
        expired = _expired(p, now)
        proposals = propose(p, key=p.id, registry=engine, evacuees=evs, refused_pairs=_refused(latest),
                            expired=expired, today=now)
        for (kind, tid), prop in plan_links(proposals, latest, expired=expired):
            new.append(SoughtLink(sought_id=p.id, target_kind=kind, target_id=tid, snapshot_id=prop.snapshot,
                                  decision=prop.decision,
                                  score=round(prop.score, 6) if prop.score is not None else None,
                                  reasons=prop.reasons))
    session.add_all(new)
    session.flush()
    return new


def relink_all(session: Session, *, by_user: Any, screen: str = "cli: anpi pfif links --relink") -> int:
    """Match every sought person again (after new evacuees arrived or a new registry snapshot); commits.

    Call it with a session that has not been used yet (see _registry_matcher)."""
    registry = _registry_matcher(session)
    try:
        persons = list(session.exec(select(SoughtPerson).order_by(SoughtPerson.imported_at, SoughtPerson.id)))
        rows = link_sought(session, persons, registry=registry)
        audit.record(session, by_user, "pfif_relink", screen, [], {"persons": len(persons), "link_rows": len(rows)})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return len(rows)


def current_links(session: Session, sought_ids: Sequence[str] | None = None) -> dict[str, list[SoughtLink]]:
    """sought id → its links whose newest row is auto, review or confirmed (oldest first)."""
    out: dict[str, list[SoughtLink]] = defaultdict(list)
    for (sid, _k, _t), row in _latest_pairs(_link_rows(session, sought_ids)).items():
        if row.decision in CURRENT:
            out[sid].append(row)
    return out


def decide_link(session: Session, sought_id: str, target_kind: str, target_id: str, decision: str, *,
                by_user: Any, reveal_restricted: bool = False, screen: str = "cli: anpi pfif") -> SoughtLink:
    """A staff member confirms or rejects a proposed link, or undoes their last decision (a new row;
    the caller commits): `pfif_desk.decide_link`, the same rule as the hub's desk. A link the user
    may not see (閲覧制限) is answered as not found."""
    return pfif_desk.decide_link(ShelterPfifLinks(session, by_user=by_user, screen=screen), sought_id, target_kind,
                                 target_id, decision, reveal_restricted=reveal_restricted)


class ShelterPfifLinks:
    """`pfif_desk.PfifLinkStore` over the shelter's session (the new row joins the caller's transaction)."""

    def __init__(self, session: Session, *, by_user: Any, screen: str) -> None:
        self.session, self.by_user, self.screen = session, by_user, screen

    def history(self, sought_id: str, target_kind: str, target_id: str) -> list[pfif_desk.LinkRow]:
        if self.session.get(SoughtPerson, sought_id) is None:
            return []
        return [pfif_desk.LinkRow(r.decision, r.by_user or "", _aware(r.at), r) for r in _link_rows(self.session, [sought_id])
                if r.target_kind == target_kind and r.target_id == target_id]

    def hidden(self, target_kind: str, target_id: str) -> bool:
        return bool(_protected(self.session, [(target_kind, target_id)]))

    def write(self, sought_id: str, target_kind: str, target_id: str, *, decision: str, last: pfif_desk.LinkRow,
              base: pfif_desk.LinkRow | None, at: datetime) -> SoughtLink:
        who, prev, b = _name(self.by_user), last.row, (base.row if base is not None else None)
        if decision == "undo":
            new = SoughtLink(sought_id=sought_id, target_kind=target_kind, target_id=target_id,
                             snapshot_id=b.snapshot_id if b else prev.snapshot_id,
                             decision=b.decision if b else "review", score=b.score if b else prev.score,
                             reasons=f"undo of {prev.decision} by {prev.by_user}" + (f"; {b.reasons}" if b else ""),
                             by_user=who, at=at)
        else:
            new = SoughtLink(sought_id=sought_id, target_kind=target_kind, target_id=target_id,
                             snapshot_id=prev.snapshot_id, decision=decision, score=prev.score,
                             reasons=f"{decision} by staff {who}", by_user=who, at=at)
        self.session.add(new)
        self.session.flush()
        audit.record(self.session, self.by_user, "decide", self.screen,
                     [f"sought:{sought_id}", f"{target_kind}:{target_id}"],
                     {"decision": decision, "link_id": new.id, "now": new.decision})
        return new


# --- 閲覧制限 --------------------------------------------------------------------------------

def _restricted_residents(session: Session, resident_ids: Iterable[str]) -> set[str]:
    """宛名番号 the one 閲覧制限 rule protects (flagged in any snapshot, or in a flagged household)."""
    prot = disclosure.protected(session)
    return {r for r in resident_ids if r and not disclosure.shown_resident(disclosure.CALLER_PUBLICATION, prot, r).listed}


def protected_evacuees(session: Session, evacuees: Sequence[Evacuee]) -> set[str]:
    """Evacuee ids that must never leave HQ's internal view, by the one rule
    (`app.services.disclosure`): linked (auto, confirmed, or a review candidate) to a protected
    resident, registered together (household key) with such a person, or care-flagged."""
    if not evacuees:
        return set()
    prot = disclosure.protected(session)
    return {e.id for e in evacuees if not disclosure.shown_evacuee(disclosure.CALLER_PUBLICATION, prot, e.id).listed}


def _protected(session: Session, targets: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    targets = list(targets)
    res = _restricted_residents(session, [t for k, t in targets if k == "resident"])
    ev_ids = [t for k, t in targets if k == "evacuee"]
    evs = [e for chunk in _chunks(ev_ids) for e in session.exec(select(Evacuee).where(Evacuee.id.in_(chunk)))]  # type: ignore[attr-defined]
    prot = protected_evacuees(session, evs)
    return {(k, t) for k, t in targets if (k == "resident" and t in res) or (k == "evacuee" and t in prot)}


# --- what the desk and the CLI show -------------------------------------------------------------

@dataclass
class LinkView:
    link: SoughtLink
    target: dict[str, Any]  # display fields
    restricted: bool = False  # shown only to roles that may see 閲覧制限

    @property
    def decision_ja(self) -> str:
        return DECISION_JA.get(self.link.decision, self.link.decision)


@dataclass
class SoughtView:
    person: SoughtPerson
    links: list[LinkView] = field(default_factory=list)  # current: auto, review, confirmed
    decided: list[LinkView] = field(default_factory=list)  # staff decisions that can be undone (newest row)
    notes: list[SoughtNote] = field(default_factory=list)

    @property
    def name(self) -> str:
        return display_name(self.person)

    @property
    def status_ja(self) -> str:
        return STATUS_PFIF_JA.get(self.person.latest_status, "")


def _evacuee_display(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    shelters = {s.id: s.name for s in session.exec(select(Shelter))}
    out = {}
    for chunk in _chunks(ids):
        for e in session.exec(select(Evacuee).where(Evacuee.id.in_(chunk))):  # type: ignore[attr-defined]
            out[e.id] = {"evacuee_id": e.id, "external_key": e.external_key, "name": full_name(e),
                         "name_kana": e.name_kana_raw or e.name_kana, "birth": e.birth_raw,
                         "sex": {"M": "男", "F": "女"}.get(e.sex, e.sex_raw), "shelter": shelters.get(e.shelter_id, ""),
                         "status": STATUS_JA.get(e.status, e.status)}
    return out


def sought_overview(session: Session, *, reveal_restricted: bool, q: str = "", include_expired: bool = False,
                    only: str = "", limit: int = 500) -> list[SoughtView]:
    """Sought persons (newest first) with their current links, for the desk screen and `anpi pfif links`.

    `only`: "" (all), "linked" (with a current link) or "open" (without). Links that touch 閲覧制限
    are left out unless `reveal_restricted`.
    """
    stmt = select(SoughtPerson).order_by(SoughtPerson.imported_at.desc(), SoughtPerson.id)  # type: ignore[attr-defined]
    persons = list(session.exec(stmt))
    now = utcnow()
    if not include_expired:
        persons = [p for p in persons if not _expired(p, now)]
    if q.strip():
        want = q.strip().lower()
        persons = [p for p in persons if want in " ".join((p.full_name, p.given_name, p.family_name, p.alternate_names,
                                                           p.pfif_record_id, p.home_city)).lower()]
    ids = [p.id for p in persons]
    rows = _link_rows(session, ids)
    latest = _latest_pairs(rows)
    pairs = sorted({(k, t) for (_s, k, t) in latest})
    hidden = set() if reveal_restricted else _protected(session, pairs)
    flagged = _protected(session, pairs) if reveal_restricted else hidden
    residents = resident_display(session, [t for k, t in pairs if k == "resident"], reveal_restricted=reveal_restricted)
    evacuees = _evacuee_display(session, [t for k, t in pairs if k == "evacuee"])
    views = {p.id: SoughtView(p) for p in persons}
    for (sid, kind, tid), row in latest.items():
        if (kind, tid) in hidden:
            continue
        shown = (residents if kind == "resident" else evacuees).get(tid) or {"name": "（見つかりません）"}
        lv = LinkView(row, {"kind": kind, "kind_ja": "住民" if kind == "resident" else "避難者", "id": tid, **shown},
                      restricted=(kind, tid) in flagged)
        if row.decision in CURRENT:
            views[sid].links.append(lv)
        if row.by_user and row.decision in STAFF_FINAL:
            views[sid].decided.append(lv)
    by_rid: dict[str, list[SoughtView]] = defaultdict(list)
    for v in views.values():
        by_rid[v.person.pfif_record_id].append(v)
    for chunk in _chunks(sorted(by_rid)):
        for n in session.exec(select(SoughtNote).where(SoughtNote.person_record_id.in_(chunk))):  # type: ignore[attr-defined]
            for v in by_rid[n.person_record_id]:
                v.notes.append(n)
    out = []
    for p in persons:
        v = views[p.id]
        v.links.sort(key=lambda lv: ({"confirmed": 0, "auto": 1, "review": 2}.get(lv.link.decision, 3),
                                     -(lv.link.score or 0.0)))
        v.notes.sort(key=lambda n: (_aware(n.source_date) or datetime.min.replace(tzinfo=timezone.utc), n.id))
        if only == "linked" and not v.links or only == "open" and v.links:
            continue
        out.append(v)
    return out[:limit]


# --- export -----------------------------------------------------------------------------------

def record_domain_for(shelter: Shelter | None) -> str:
    """Our PFIF record ids: `anpi.<municipality code, else shelter code>.jp/<ULID>`."""
    code = (shelter.municipality_code or shelter.code) if shelter is not None else ""
    return record_domain_for_code(code, fallback=shelter.id.lower() if shelter is not None else "local")


def _second(dt: datetime | None) -> datetime:
    return (_aware(dt) or utcnow()).replace(microsecond=0)


def _age(ev: Evacuee, today: datetime) -> str:
    return age_text(ev.birth_date, ev.birth_year_min, ev.birth_year_max, today)


def build_export(session: Session, *, expiry_days: int | None = None, now: datetime | None = None) -> tuple[PfifDocument, list[str]]:
    """The PFIF 1.4 document `export_pfif` writes, and the evacuee ids it discloses.

    Only evacuees with consent ⑭ (consent_public is True), never one that `protected_evacuees`
    names; `entry_date` strictly increases in document order, ending at `now`.
    """
    now = _second(now or utcnow())
    expiry = now + timedelta(days=expiry_days if expiry_days is not None else default_expiry_days())
    evs = list(session.exec(select(Evacuee).where(Evacuee.consent_public == True)  # noqa: E712
                            .order_by(Evacuee.created_at, Evacuee.id)))
    blocked = protected_evacuees(session, evs)
    evs = [e for e in evs if e.id not in blocked and (full_name(e) or e.name_kana_raw or e.name_kana)]
    shelters = {s.id: s for s in session.exec(select(Shelter))}
    stays: dict[str, list[StayEvent]] = defaultdict(list)
    for chunk in _chunks([e.id for e in evs]):
        for st in session.exec(select(StayEvent).where(StayEvent.evacuee_id.in_(chunk))  # type: ignore[attr-defined]
                               .order_by(StayEvent.at, StayEvent.id)):
            stays[st.evacuee_id].append(st)
    doc = PfifDocument("1.4")
    ours: dict[str, str] = {}  # evacuee id → our person_record_id
    for ev in evs:
        sh = shelters.get(ev.shelter_id)
        shelter_name = sh.name if sh else ""
        domain = record_domain_for(sh)
        pid = f"{domain}/{ev.id}"
        ours[ev.id] = pid
        named = bool(full_name(ev))
        person = evacuee_person(pid, expiry=expiry, shelter_name=shelter_name,
                                source_date=_second(ev.updated_at or ev.created_at),
                                name=full_name(ev) or ev.name_kana or ev.name_kana_raw,
                                given_name=ev.given_name if named else "", family_name=ev.family_name if named else "",
                                kana=ev.name_kana or ev.name_kana_raw, sex=ev.sex, age=_age(ev, now))
        person.notes = [stay_note(domain, st.id, pid, st.kind, shelter_name, _second(st.at))
                        for st in stays.get(ev.id, [])]
        if not person.notes:
            person.notes.append(registered_note(domain, ev.id, pid, shelter_name, _second(ev.created_at)))
        doc.persons.append(person)
    doc.notes.extend(_found_notes(session, ours, shelters, {e.id: e for e in evs}))
    stamp_entry_dates(doc, now)
    return doc, [e.id for e in evs]


def _found_notes(session: Session, ours: dict[str, str], shelters: dict[str, Shelter],
                 evs: dict[str, Evacuee]) -> list[PfifNote]:
    """For each Person Finder record a staff member confirmed as one of the exported evacuees (directly,
    or through the registry resident that evacuee is linked to): a note on *their* record saying the
    person is alive, pointing at ours (linked_person_record_id)."""
    dec = _latest_decisions(session)
    ev_of_resident: dict[str, str] = {}
    for ev_id in ours:
        d = dec.get(ev_id)
        if d is not None and d.decision in ("auto", "confirmed") and d.resident_id:
            ev_of_resident.setdefault(d.resident_id, ev_id)
    notes = []
    for (sid, kind, tid), row in _latest_pairs(_link_rows(session)).items():
        if row.decision != "confirmed":
            continue
        ev_id = tid if kind == "evacuee" else ev_of_resident.get(tid, "")
        if ev_id not in ours:
            continue
        sought = session.get(SoughtPerson, sid)
        if sought is None:
            continue
        sh = shelters.get(evs[ev_id].shelter_id)
        notes.append(found_note(record_domain_for(sh), row.id, sought.pfif_record_id, ours[ev_id],
                                sh.name if sh else "", _second(row.at)))
    return notes


def export_pfif(session: Session, out: Path, *, by_user: str, expiry_days: int | None = None,
                screen: str = "cli: anpi export --format pfif") -> int:
    """Write evacuees who consented to publication (⑭) as a PFIF 1.4 file Person Finder accepts.

    Audited and committed (the file leaves the laptop, so the record of it must not be lost);
    written atomically. Returns the number of persons written. `expiry_days` defaults to
    ANPI_PFIF_EXPIRY_DAYS or 365.
    """
    out = Path(out)
    doc, disclosed = build_export(session, expiry_days=expiry_days)
    with atomic_path(out) as tmp:  # the file appears only once its audit entry is committed
        tmp.write_bytes(write_pfif(doc))
        try:
            audit.record(session, by_user, "export", screen, [f"evacuee:{e}" for e in disclosed],
                         {"format": "pfif", "file": out.name, "persons": len(doc.persons),
                          "notes": len(doc.all_notes()), "expiry_days": expiry_days or default_expiry_days()})
            session.commit()
        except Exception:
            session.rollback()
            raise
    return len(doc.persons)
