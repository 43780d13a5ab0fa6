"""安否照会 at the hub: the desk answers about anyone registered at any shelter of its municipality.

The shelter's desk answers only about its own evacuees, because a laptop does not know another
shelter's 閲覧制限 status or injury items. The hub holds every shelter's registrations
(`hub_evacuee`, with the 様式第1号 items ⑥–⑪ in `extra`), the person links and the keyed MACs of
the registry's 閲覧制限 residents, so its desk (HQ's call centre) can answer for the whole town.
The rules are the shelter's own (`app.services.inquiry_rules`: the consent matrix, the
identification rules, the wording, the form checks, the audit shape) and the desk's flow is
`app.services.inquiry_desk.answer_inquiry`; this module is the hub's store for them (`HubInquiries`):
it reads the hub's rows and logs the answer (`hub_inquiry` + the hub audit chain, one transaction).

Choices made here (they decide disclosures, so they are written down):
- One person, several registrations: an evacuee who moved from one shelter to another is often
  registered again. Registrations linked to the same resident (active `hub_person_link`, same
  person key) count as one person; consents are the strictest of them (any refusal wins), the
  items come from the registration where the person is now (in a shelter, newest first), and if
  any of them is protected, all are. Unlinked namesakes stay separate people (ask for detail).
- 閲覧制限 is fail-closed. A registration is protected when the hub withholds it
  (`hub_evacuee.withheld`, sticky), when its care flags say `restricted`, when its person link
  (or its newest decision, if still "review") names a resident flagged in *any* registry backup
  held for that municipality (`hub_restricted`, keyed MACs), when another municipality found it
  to be one of its protected residents (`hub_cross_link.restricted`), or when such a link exists
  but the hub has no data key to check it with.
- Identification uses, besides each registration as typed, the registry record of the resident
  its active person link names (kanji name, reading, date of birth, address, from the
  municipality's newest backup): rosters are often typed in kana, romaji, half-width or another
  kanji, or without a date of birth. A detail agrees when it agrees with either source and rules
  the person out when it contradicts every source that records it (`inquiry_rules.fit`). Without
  the data key, or for a link to another municipality's resident, only the rows are used. The
  backup is decrypted once per process and snapshot (`registry.open_records`' cache) and only the
  linked residents' facts are worked out, once each (`linked_facts`): not the registry per inquiry.
- An age typed at registration ("36歳") is read against the day of registration (`registered_at`).
- Every request is logged, including one that only made the desk ask for more detail
  (`hub_inquiry.outcome` "ambiguous" with an empty answer text; audit action "inquiry_search").
- The desk's answer never carries the real outcome: "answered" or "no_information" (or
  "needs_detail"). The real one is in the log, for HQ and auditors.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from app.services import inquiry_desk as desk
from app.services.errors import InvalidInput
from app.services.inquiry_desk import fits
from app.services.inquiry_rules import (
    OUTCOME_JA, Asked, Consents, InquiryRequest, ItemSource, PersonFacts, birth_text, decide,
    disclosed_items, facts_from_birth, item_values, location_text, log_detail, name_key_pairs, name_keys,
    parse_asked, require_valid, resident_facts, search_detail,
)
from matching.kana import to_katakana
from sync.events import EVACUEE_FORM_FIELDS
from sync.errors import DataKeyError, RegistryError
from sync.hub import audit, registry
from sync.hub.apply import in_
from sync.hub.registry import DataKey
from sync.hub.restricted import protected_whole
from sync.hub.store import (
    hub_device, hub_evacuee, hub_event, hub_inquiry, hub_person_link, hub_stay,
    new_row_id, resolve_municipality, set_tenant, utcnow,
)

#: what the desk is told happened (the real outcome stays in the log)
DESK_OUTCOMES = ("answered", "no_information", "needs_detail")


def _json(text: Any) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None  # damaged: callers fail closed


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


# --- one registration as the rules see it -------------------------------------------------------

def _day(text: Any) -> date | None:
    """The calendar day an ISO date or timestamp names, as written (the laptop's local day)."""
    if not text:
        return None
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def row_names(name: Any, kana: Any) -> dict[str, set[str]]:
    """The name keys of a registration as typed (kanji, the reading, the reading in katakana)."""
    k = _str(kana)
    return name_keys(_str(name), k, to_katakana(k))


def row_facts(row: Mapping[str, Any]) -> PersonFacts:
    """What a hub_evacuee row says that can identify its person. A date of birth typed as an age
    ("36歳") or a two-digit era year is read against the day of registration, not of the inquiry."""
    names = row_names(row["name"], row["name_kana"])
    return facts_from_birth(names, _str(row["address"]), day=_day(row["birth_date"]), raw=_str(row["birth_date_raw"]),
                            today=_day(row["registered_at"]))


# --- the linked resident's registry facts -----------------------------------------------------------

#: (engine, municipality, snapshot id) → 宛名番号 → PersonFacts (None: not in that backup). A backup
#: never changes once stored, so what was worked out from it holds for the life of the process; only
#: the residents some evacuee is linked to are ever worked out (a few thousand, not the registry).
_facts_cache: OrderedDict[tuple[int, str, str], dict[str, PersonFacts | None]] = OrderedDict()
_facts_lock = threading.Lock()
FACTS_CACHE = 4


def _snapshot_facts(engine: Engine, m: str, snapshot_id: str) -> dict[str, PersonFacts | None]:
    ck = (id(engine), m, snapshot_id)
    with _facts_lock:
        hit = _facts_cache.get(ck)
        if hit is None:
            hit = _facts_cache[ck] = {}
            while len(_facts_cache) > FACTS_CACHE:
                _facts_cache.popitem(last=False)
        else:
            _facts_cache.move_to_end(ck)
        return hit


def linked_facts(conn: Connection, m: str, key: DataKey | None) -> dict[str, PersonFacts]:
    """evacuee id → the registry facts of the resident its active person link names, from m's newest
    registry backup; {} without a data key or a backup (identification then uses the rows alone).

    The backup is one sealed blob: `registry.open_records` decrypts it once per process and snapshot
    (its own cache), and each linked resident's facts are worked out once (`_facts_cache`), so an
    inquiry costs one read of the links and dictionary look-ups. Links to another municipality's
    resident are not followed: this desk reads only its own municipality's registry."""
    if key is None:
        return {}
    snap = registry.latest_snapshot(conn, m)  # (sets the tenant)
    if snap is None:
        return {}
    links = conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.resident_id).where(
        hub_person_link.c.municipality_code == m, *_own_active_link(m))).all()
    return _facts_of_links(conn, m, key, snap, links) or {}


def _own_active_link(m: str) -> tuple[Any, ...]:
    """An active person link to one of m's own residents (the only ones this desk follows)."""
    return (hub_person_link.c.revoked_at.is_(None),
            (hub_person_link.c.resident_municipality.is_(None)) | (hub_person_link.c.resident_municipality == m))


def _facts_of_links(conn: Connection, m: str, key: DataKey, snap: registry.SnapshotInfo,
                    links: Sequence[tuple[Any, Any]]) -> dict[str, PersonFacts] | None:
    """evacuee id → the linked resident's facts for these (evacuee id, 宛名番号) links; None when
    the backup cannot be opened with this key (then the rows alone are used, as without a key)."""
    if not links:
        return {}
    cache = _snapshot_facts(conn.engine, m, snap.snapshot_id)
    rec: registry.Records | None = None
    out: dict[str, PersonFacts] = {}
    for eid, rid in links:
        rid = str(rid)
        if rid not in cache:
            if rec is None:
                try:
                    rec = registry.open_records(conn.engine, key, m, snap)
                except (DataKeyError, RegistryError):
                    return None
            cache[rid] = _record_facts(rec, rid, snap.as_of)
        f = cache[rid]
        if f is not None:
            out[eid] = f
    return out


def _record_facts(rec: registry.Records, rid: str, as_of: str) -> PersonFacts | None:
    row = rec.by_id(rid)
    if row is None:
        return None
    d = rec.as_dict(row)
    return resident_facts(
        family=_str(d.get("family_name")), given=_str(d.get("given_name")), family_kana=_str(d.get("family_name_kana")),
        given_kana=_str(d.get("given_name_kana")), alpha=_str(d.get("alpha_name")), birth_day=_day(d.get("birth_date")),
        birth_raw=_str(d.get("birth_raw")), address=_str(d.get("address")), as_of=_day(as_of), gaiji=rec.gaiji)


def row_values(row: Mapping[str, Any], shelter_name: str, destination: str) -> dict[int, str]:
    """Items ① … ⑪ of a hub_evacuee row (⑥–⑪ from `extra`, absent from older laptops' events)."""
    extra = _json(row["extra"]) or {}
    form = {f: _str(extra.get(f)) for f in EVACUEE_FORM_FIELDS}
    day = _day(row["birth_date"])
    return item_values(ItemSource(
        name=_str(row["name"]), kana=to_katakana(_str(row["name_kana"])),
        birth=birth_text(day, _str(row["birth_date_raw"])), sex=_str(row["sex"]), address=_str(row["address"]),
        nationality=form["nationality"], identifying_info=form["identifying_info"], injury=form["injury"],
        injury_state=form["injury_state"],
        location=location_text(_str(row["status"]) or "in_shelter", shelter_name, form["current_location"],
                               destination),
        contact=form["contact"] or _str(row["phone"])))


# --- the name index: candidates by key, not by scanning -------------------------------------------
#
# `fit` can only say yes when a name agrees, and a name agrees only when the asked name and one of the
# person's sources (the registration as typed, or the linked resident's registry record) share a
# (script, key) pair (`inquiry_rules.name_key_pairs`). So an index from those pairs to evacuee ids
# (and to linked 宛名番号) finds every registration that could fit; the full rules then run on those
# few rows, read fresh from the database. The index may hold more than is true (an old name, a link
# revoked since, a row not registered): that only adds candidates the rules then rule out. It must
# never hold less, so before each look-up it takes in what changed (`_refresh`).

#: how far before the newest `updated_at` / `linked_at` already taken in a refresh looks again. Writers
#: stamp rows with a time taken when their transaction starts, before they wait for the tenant's lock,
#: so a row can commit later than a newer-stamped one; this covers that wait (seconds in practice).
SLACK = timedelta(minutes=10)
#: every so often the names are read again in full (only changed names are worked out again): a
#: bound on anything the slack did not cover (e.g. a writer that waited longer than SLACK)
FULL_EVERY = 600.0


@dataclass
class _Index:
    """One municipality's name index in this process (see above). Guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sig: tuple[Any, ...] | None = None  # what the database said at the last refresh of the names
    by_key: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # pair → evacuee ids
    names: dict[str, tuple[Any, Any, frozenset[tuple[str, str]]]] = field(default_factory=dict)
    rows: int = -1
    updated: datetime | None = None  # newest updated_at taken in
    full_at: float = 0.0  # time.monotonic() of the last full read
    # linked residents, for one registry snapshot read with one data key
    snapshot: tuple[str, str] | None = None  # (snapshot id, key id)
    res_by_key: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # pair → 宛名番号
    res_known: set[str] = field(default_factory=set)
    link_sig: tuple[Any, ...] | None = None  # … and of the linked residents
    links: int = -1
    linked: datetime | None = None
    unreadable: bool = False  # the backup cannot be opened with this key

    def put(self, eid: str, name: Any, kana: Any) -> None:
        old = self.names.get(eid)
        if old is not None and old[0] == name and old[1] == kana:
            return
        pairs = frozenset(name_key_pairs(row_names(name, kana)))
        if old is not None:
            for p in old[2] - pairs:
                ids = self.by_key.get(p)
                if ids is not None:
                    ids.discard(eid)
                    if not ids:
                        del self.by_key[p]
        for p in pairs:
            self.by_key.setdefault(p, set()).add(eid)
        self.names[eid] = (name, kana, pairs)


#: engine → municipality → its index (an engine that is gone takes its indexes with it)
_indexes: weakref.WeakKeyDictionary[Engine, dict[str, _Index]] = weakref.WeakKeyDictionary()
_indexes_lock = threading.Lock()


def _index_of(engine: Engine, m: str) -> _Index:
    with _indexes_lock:
        return _indexes.setdefault(engine, {}).setdefault(m, _Index())


def _signature(conn: Connection, m: str) -> tuple[Any, ...]:
    """Cheap figures that move when m's registrations or person links do: the feed number (every
    laptop's change arrives as an event, numbered in commit order), the rows and links counts and
    their newest stamps (HQ's own edits of a row)."""
    ev, pl = hub_evacuee.c, hub_person_link.c
    return tuple(conn.execute(select(
        select(func.max(hub_event.c.hub_seq)).where(hub_event.c.municipality_code == m).scalar_subquery(),
        select(func.count()).select_from(hub_evacuee).where(ev.municipality_code == m).scalar_subquery(),
        select(func.max(ev.updated_at)).where(ev.municipality_code == m).scalar_subquery(),
        select(func.count()).select_from(hub_person_link).where(pl.municipality_code == m).scalar_subquery(),
        select(func.max(pl.linked_at)).where(pl.municipality_code == m).scalar_subquery(),
    )).one())


def _refresh(conn: Connection, m: str, key: DataKey | None, snap: registry.SnapshotInfo | None,
             ix: _Index) -> None:
    """Take in what changed since the last refresh (caller holds ix.lock and has set the tenant)."""
    sig = _signature(conn, m)
    _, rows, updated, links, linked = sig
    now = time.monotonic()
    full = ix.rows < 0 or rows < ix.rows or ix.updated is None or now - ix.full_at > FULL_EVERY
    if full or sig != ix.sig:
        q = select(hub_evacuee.c.evacuee_id, hub_evacuee.c.name, hub_evacuee.c.name_kana).where(
            hub_evacuee.c.municipality_code == m)
        if not full:
            q = q.where((hub_evacuee.c.updated_at >= ix.updated - SLACK) | hub_evacuee.c.updated_at.is_(None))
        for eid, name, kana in conn.execute(q):
            ix.put(eid, name, kana)
        ix.rows, ix.updated = rows, updated if updated is not None else ix.updated
        if full:
            ix.full_at = now
        ix.sig = sig
    if key is None or snap is None:
        return
    if ix.snapshot != (snap.snapshot_id, key.key_id) or links < ix.links or ix.linked is None or full:
        ix.snapshot, ix.res_by_key, ix.res_known, ix.unreadable = (snap.snapshot_id, key.key_id), {}, set(), False
        ix.links, ix.linked = -1, None
    if not ix.unreadable and (ix.links < 0 or sig != ix.link_sig):
        q = select(hub_person_link.c.evacuee_id, hub_person_link.c.resident_id).where(
            hub_person_link.c.municipality_code == m, *_own_active_link(m))
        if ix.links >= 0 and ix.linked is not None:
            q = q.where(hub_person_link.c.linked_at >= ix.linked - SLACK)
        new = sorted({str(rid) for _, rid in conn.execute(q)} - ix.res_known)
        facts = _facts_of_links(conn, m, key, snap, [(rid, rid) for rid in new])
        if facts is None:
            ix.unreadable = True
        else:
            for rid in new:
                ix.res_known.add(rid)
                f = facts.get(rid)
                for p in name_key_pairs(f.names) if f is not None else ():
                    ix.res_by_key.setdefault(p, set()).add(rid)
            ix.links, ix.linked = links, linked if linked is not None else ix.linked
    ix.link_sig = sig


def _candidates(conn: Connection, m: str, key: DataKey | None, asked: Asked
                ) -> tuple[list[dict[str, Any]], dict[str, PersonFacts]]:
    """The registrations whose name could agree with the asked one (every one that can fit, read
    fresh, in registration order) and the linked registry facts of those, as `linked_facts` has them."""
    snap = registry.latest_snapshot(conn, m) if key is not None else None  # (sets the tenant)
    set_tenant(conn, m)
    ix = _index_of(conn.engine, m)
    pairs = name_key_pairs(asked.names)
    with ix.lock:
        _refresh(conn, m, key, snap, ix)
        eids = set().union(*(ix.by_key.get(p, ()) for p in pairs))
        rids = set() if ix.unreadable or snap is None else set().union(*(ix.res_by_key.get(p, ()) for p in pairs))
        unreadable = ix.unreadable
    if rids:
        eids.update(r[0] for r in conn.execute(select(hub_person_link.c.evacuee_id).where(
            hub_person_link.c.municipality_code == m, *_own_active_link(m),
            in_(conn, hub_person_link.c.resident_id, sorted(rids)))))
    if not eids:
        return [], {}
    rows = [dict(r) for r in conn.execute(
        select(*_ROW_COLS).where(hub_evacuee.c.municipality_code == m, hub_evacuee.c.registered.is_(True),
                                 in_(conn, hub_evacuee.c.evacuee_id, sorted(eids)))
        .order_by(hub_evacuee.c.registered_at, hub_evacuee.c.evacuee_id)).mappings()]
    linked: dict[str, PersonFacts] = {}
    if key is not None and snap is not None and not unreadable and rows:
        links = conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.resident_id).where(
            hub_person_link.c.municipality_code == m, *_own_active_link(m),
            in_(conn, hub_person_link.c.evacuee_id, [r["evacuee_id"] for r in rows]))).all()
        linked = _facts_of_links(conn, m, key, snap, links) or {}
    return rows, linked


# --- finding the person ---------------------------------------------------------------------------

_ROW_COLS = [hub_evacuee.c[n] for n in (
    "evacuee_id", "device_id", "shelter_code", "name", "name_kana", "birth_date_raw", "birth_date", "sex", "address",
    "phone", "care", "consents", "registered_at", "status", "current_shelter_code", "last_stay_key", "extra",
    "withheld")]


@dataclass
class Person:
    """One person as the hub knows them: one registration, or several linked to the same resident."""

    key: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [r["evacuee_id"] for r in self.rows]

    def current(self) -> dict[str, Any]:
        """The registration that says where the person is now: in a shelter first, newest first."""
        return sorted(self.rows, key=lambda r: ((r["status"] or "in_shelter") == "in_shelter",
                                                _str(r["registered_at"]), r["evacuee_id"]))[-1]

    def consents(self) -> Consents:
        """The strictest of the person's registrations; a damaged consents object refuses everything."""
        def one(text: Any) -> Consents:
            data = _json(text)
            return Consents(False, False, False) if data is None else Consents.from_json(data)
        return Consents.strictest(one(r["consents"]) for r in self.rows)


@dataclass
class HubFound:
    kind: str  # one | none | restricted | ambiguous
    person: Person | None = None
    candidates: list[str] = field(default_factory=list)  # every evacuee id considered
    restricted: list[str] = field(default_factory=list)  # evacuee ids


def find_person(conn: Connection, m: str, key: DataKey | None, name: str, kana: str = "", birth: str = "",
                address: str = "") -> HubFound:
    """The one person the inquirer means among every shelter's registrations, without guessing."""
    asked = parse_asked(name, kana, birth, address)
    if not asked.names:
        return HubFound("none")
    set_tenant(conn, m)
    candidates, linked = _candidates(conn, m, key, asked)
    fitted = fits(asked, ((r["evacuee_id"], row_facts(r), linked.get(r["evacuee_id"])) for r in candidates))
    rows: dict[str, dict[str, Any]] = {r["evacuee_id"]: r for r in candidates if r["evacuee_id"] in fitted}
    if not rows:
        return HubFound("none")
    # registrations linked to the same resident are one person; bring in all of them
    pkey: dict[str, str] = {}
    links = conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.person_key).where(
        hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
        in_(conn, hub_person_link.c.evacuee_id, sorted(rows)))).all()
    keys = sorted({pk for _, pk in links})
    if keys:
        for eid, pk in conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.person_key).where(
                hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
                in_(conn, hub_person_link.c.person_key, keys))).all():
            pkey[eid] = f"person:{pk}"
        more = sorted(set(pkey) - set(rows))
        if more:
            for r in conn.execute(select(*_ROW_COLS).where(hub_evacuee.c.municipality_code == m,
                                                           hub_evacuee.c.registered.is_(True),
                                                           in_(conn, hub_evacuee.c.evacuee_id, more))).mappings():
                rows[r["evacuee_id"]] = dict(r)
    people: dict[str, Person] = {}
    for eid, r in rows.items():
        people.setdefault(pkey.get(eid, f"evacuee:{eid}"), Person(pkey.get(eid, f"evacuee:{eid}"))).rows.append(r)
    # 閲覧制限: the one rule, household-wide (sync/hub/restricted.py → matching.disclosure): a
    # person's registrations together, and everyone in a flagged person's registry or intake household
    flagged_rows = protected_whole(conn, m, key) & set(rows)
    strong = [p.key for p in people.values() if any(fitted.get(i) == "strong" for i in p.ids())]
    weak = [p.key for p in people.values() if p.key not in strong and any(fitted.get(i) == "weak" for i in p.ids())]
    flagged = {p.key for p in people.values() if set(p.ids()) & flagged_rows}
    kind, one, _ = decide(strong, weak, flagged)
    considered = [i for k in strong + weak for i in people[k].ids()]
    restricted = [i for i in considered if i in flagged_rows or pkey.get(i, f"evacuee:{i}") in flagged]
    return HubFound(kind, people[one] if one else None, considered, restricted)


def _where(conn: Connection, m: str, row: Mapping[str, Any]) -> tuple[str, str]:
    """(shelter name as enrolled, destination of the newest stay when the person left or moved)."""
    shelter = ""
    if row["device_id"]:
        d = conn.execute(select(hub_device.c.shelter_name, hub_device.c.name).where(
            hub_device.c.municipality_code == m, hub_device.c.device_id == row["device_id"])).first()
        shelter = (d[0] or d[1]) if d else ""
    shelter = shelter or _str(row["shelter_code"])
    dest = ""
    if (row["status"] or "in_shelter") != "in_shelter":
        s = conn.execute(select(hub_stay.c.destination).where(
            hub_stay.c.municipality_code == m, hub_stay.c.evacuee_id == row["evacuee_id"])
            .order_by(hub_stay.c.at.desc(), hub_stay.c.stay_id.desc()).limit(1)).first()
        dest = _str(s[0]) if s else ""
    return shelter, dest


# --- answering and logging -----------------------------------------------------------------------

@dataclass
class HubAnswer:
    inquiry_id: str
    municipality_code: str
    needs_detail: bool
    outcome: str  # the real one (for the log)
    items: list[dict[str, Any]]
    answer_text: str

    @property
    def desk_outcome(self) -> str:
        """What the desk may know: answered, or the one "no information" for every other reason."""
        if self.needs_detail:
            return "needs_detail"
        return "answered" if self.items else "no_information"

    def for_desk(self) -> dict[str, Any]:
        return {"id": self.inquiry_id, "municipality_code": self.municipality_code, "outcome": self.desk_outcome,
                "needs_detail": self.needs_detail, "items": self.items, "answer_text": self.answer_text}


def answer_inquiry(engine: Engine, key: DataKey | None, municipality: str | None, req: InquiryRequest, *,
                   by: str, actor: str) -> HubAnswer:
    """Find the person across every shelter of the municipality, decide what may be said, and log
    the inquiry and its audit entry in one transaction (`inquiry_desk.answer_inquiry`, the same flow
    as the shelter's desk). Bad input raises InvalidInput naming the field."""
    require_valid(req)
    if not by.strip():
        raise InvalidInput("by: the desk member's name is required", "対応者の氏名を入力してください", "by")
    with engine.begin() as conn:
        return desk.answer_inquiry(HubInquiries(conn, resolve_municipality(conn, municipality), key, by=by.strip(),
                                                actor=actor), req)


class HubInquiries:
    """`inquiry_desk.InquiryStore` over one municipality's rows, inside the caller's transaction:
    every shelter's registrations, one person's registrations together; every request is logged
    in `hub_inquiry` (one that only asked for detail too) and in the hub audit chain."""

    def __init__(self, conn: Connection, m: str, key: DataKey | None, *, by: str, actor: str) -> None:
        self.conn, self.m, self.key, self.by, self.actor = conn, m, key, by, actor

    def find(self, r: InquiryRequest) -> HubFound:
        return find_person(self.conn, self.m, self.key, r.sought_name, r.sought_kana, r.sought_birth, r.sought_address)

    def consents(self, found: HubFound) -> Consents | None:
        return found.person.consents() if found.person is not None else None

    def disclosed(self, found: HubFound, shown: Sequence[int]) -> tuple[str | None, list[dict[str, Any]]]:
        if found.person is None:
            return None, []
        row = found.person.current()
        return row["evacuee_id"], disclosed_items(row_values(row, *_where(self.conn, self.m, row)), shown)

    def _insert(self, r: InquiryRequest, outcome: str, evacuee_id: str | None, items: list[dict[str, Any]],
                text: str) -> str:
        iid = new_row_id()
        set_tenant(self.conn, self.m)
        self.conn.execute(hub_inquiry.insert().values(
            municipality_code=self.m, inquiry_id=iid, at=utcnow(), by_user=self.by,
            inquirer=json.dumps({"name": r.inquirer_name, "address": r.inquirer_address, "phone": r.inquirer_phone,
                                 "id_proof": r.id_proof, "id_proof_note": r.id_proof_note, "purpose": r.purpose},
                                ensure_ascii=False),
            relationship=r.relationship, asked=json.dumps(r.sought(), ensure_ascii=False), outcome=outcome,
            evacuee_id=evacuee_id, items=json.dumps(items, ensure_ascii=False), answer_text=text))
        return iid

    def log_search(self, r: InquiryRequest, found: HubFound) -> HubAnswer:
        iid = self._insert(r, "ambiguous", None, [], "")
        audit.record(self.conn, self.m, actor=self.actor, action="inquiry_search",
                     detail={"inquiry_id": iid, **search_detail(r, found.candidates, found.restricted)})
        return HubAnswer(iid, self.m, True, "ambiguous", [], "")

    def log_answer(self, r: InquiryRequest, found: HubFound, *, outcome: str, evacuee_id: str | None,
                   items: list[dict[str, Any]], text: str) -> HubAnswer:
        iid = self._insert(r, outcome, evacuee_id, items, text)
        audit.record(self.conn, self.m, actor=self.actor, action="inquiry", detail=log_detail(
            inquiry_id=iid, r=r, outcome=outcome, evacuee_id=evacuee_id, items=items,
            candidates=found.candidates, restricted=found.restricted))
        return HubAnswer(iid, self.m, False, outcome, items, text)


def list_inquiries(engine: Engine, municipality: str | None, *, outcome: str = "", limit: int = 500,
                   actor: str | None = None) -> list[dict[str, Any]]:
    """The municipality's inquiry log, newest first, with the real outcome (HQ and auditors only).
    With `actor`, the look is written to the audit log (the CLI; the routes audit their own)."""
    if outcome and outcome not in OUTCOME_JA:
        raise InvalidInput(f"outcome: must be one of {', '.join(OUTCOME_JA)}", "回答区分が正しくありません", "outcome")
    with engine.begin() as conn:
        m = resolve_municipality(conn, municipality)
        set_tenant(conn, m)
        q = select(hub_inquiry).where(hub_inquiry.c.municipality_code == m)
        if outcome:
            q = q.where(hub_inquiry.c.outcome == outcome)
        rows = conn.execute(q.order_by(hub_inquiry.c.at.desc(), hub_inquiry.c.inquiry_id.desc())
                            .limit(max(1, min(int(limit), 5000)))).mappings().all()
        out = [log_row(r) for r in rows]
        if actor:
            audit.record(conn, m, actor=actor, action="inquiry.listed", detail={"outcome": outcome, "count": len(out)})
    return out


def log_row(r: Mapping[str, Any]) -> dict[str, Any]:
    items = _json(r["items"]) or []
    return {"id": r["inquiry_id"], "municipality_code": r["municipality_code"], "at": r["at"].isoformat(),
            "by_user": r["by_user"], "inquirer": _json(r["inquirer"]) or {}, "relationship": r["relationship"],
            "sought": _json(r["asked"]) or {}, "outcome": r["outcome"], "outcome_ja": OUTCOME_JA.get(r["outcome"], ""),
            "needs_detail": r["outcome"] == "ambiguous" and not r["answer_text"], "evacuee_id": r["evacuee_id"],
            "items": [i["no"] for i in items if isinstance(i, dict) and "no" in i], "answer_text": r["answer_text"]}


__all__: Sequence[str] = ("DESK_OUTCOMES", "HubAnswer", "HubFound", "Person", "answer_inquiry", "find_person",
                          "linked_facts", "list_inquiries", "log_row", "row_facts", "row_values")
