"""閲覧制限 at the shelter: the facts for `matching.disclosure`, the one rule every output asks.

Why here: the rule itself (`matching.disclosure`) has no I/O, so the hub can call it too; this
module reads the shelter's database once per answer and says, for any resident or evacuee, what
the rule needs — flagged, and whether the household holds a flagged member.

Who is protected at the shelter (over-protecting is the safe error):

- a resident flagged 閲覧制限 in *any* snapshot (once protected, protected);
- every member of a registry household (世帯番号, newest snapshot) holding a flagged member;
- an evacuee whose engine or staff link (auto / confirmed), or any candidate of a pending review,
  names a protected resident; an evacuee whose care flags say ``restricted``;
- everyone who registered together at intake (household key) with a protected evacuee, and the
  resident each of them is linked to — the child's registry record would say where the mother is.

The flagged residents and their households are few; they are read once per set of snapshots and
kept (a new snapshot changes the key), the evacuee side is read per answer.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import text
from sqlmodel import Session

from matching.disclosure import MASK, Caller, Facts, Shown, decide, households, spread

__all__ = ["CALLER_PUBLICATION", "MaskedCertificate", "Protected", "caller", "certificate_facts", "certificate_for",
           "may_print_certificate", "protected", "retracted", "shown_evacuee", "shown_resident"]

CALLER_PUBLICATION = Caller(sees_restricted=False, publication=True)

_CACHE: dict[tuple[str, tuple[int, ...]], tuple[frozenset[str], frozenset[str], frozenset[str]]] = {}
_LOCK = threading.Lock()


def caller(user: Any = None, *, sees_restricted: bool | None = None, publication: bool = False) -> Caller:
    """The rule's caller for a signed-in user (the "restricted" permission) or an explicit flag."""
    if sees_restricted is None:
        sees_restricted = bool(user is not None and user.can("restricted"))
    return Caller(sees_restricted=sees_restricted, publication=publication)


@dataclass
class Protected:
    """The shelter's protected people right now (module notes)."""

    flagged_residents: set[str] = field(default_factory=set)
    residents: set[str] = field(default_factory=set)
    flagged_evacuees: set[str] = field(default_factory=set)
    evacuees: set[str] = field(default_factory=set)
    households: set[str] = field(default_factory=set)  # newest-snapshot 世帯番号 holding a flagged member

    def resident(self, resident_id: str | None) -> Facts:
        rid = str(resident_id or "")
        return Facts(flagged=rid in self.flagged_residents,
                     household_flagged=rid in self.residents and rid not in self.flagged_residents)

    def evacuee(self, evacuee_id: str | None) -> Facts:
        eid = str(evacuee_id or "")
        return Facts(flagged=eid in self.flagged_evacuees,
                     household_flagged=eid in self.evacuees and eid not in self.flagged_evacuees)


def _registry_part(session: Session) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(flagged 宛名番号 in any snapshot, those plus their newest-snapshot households, those 世帯番号)."""
    conn = session.connection()
    snaps = tuple(r[0] for r in conn.execute(text("SELECT id FROM registrysnapshot ORDER BY id")))
    key = (str(conn.engine.url), snaps)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    flagged = {str(r[0]) for r in conn.execute(text("SELECT DISTINCT resident_id FROM resident WHERE restricted = 1"))}
    newest = conn.execute(text("SELECT id FROM registrysnapshot ORDER BY as_of DESC, id DESC LIMIT 1")).scalar()
    member_of: dict[str, str] = {}
    hhs: set[str] = set()
    if newest is not None and flagged:
        hhs = {str(r[0]) for r in conn.execute(text(
            "SELECT DISTINCT household_id FROM resident WHERE snapshot_id = :s AND restricted = 1 "
            "AND household_id != ''"), {"s": newest})}
        hhs |= _households_of(conn, newest, flagged)
        for chunk in _chunks(sorted(hhs)):
            params = {f"h{i}": h for i, h in enumerate(chunk)}
            marks = ",".join(f":h{i}" for i in range(len(chunk)))
            for rid, hh in conn.execute(text(f"SELECT resident_id, household_id FROM resident WHERE snapshot_id = :s "
                                             f"AND household_id IN ({marks})"), {"s": newest, **params}):
                member_of[str(rid)] = str(hh)
    out = (frozenset(flagged), frozenset(spread(flagged, households(member_of))), frozenset(hhs))
    with _LOCK:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = out
    return out


def _households_of(conn: Any, snapshot_id: int, resident_ids: set[str]) -> set[str]:
    """Newest-snapshot 世帯番号 of residents flagged in an older snapshot only."""
    out: set[str] = set()
    for chunk in _chunks(sorted(resident_ids)):
        params = {f"r{i}": r for i, r in enumerate(chunk)}
        marks = ",".join(f":r{i}" for i in range(len(chunk)))
        out |= {str(r[0]) for r in conn.execute(text(
            f"SELECT household_id FROM resident WHERE snapshot_id = :s AND resident_id IN ({marks}) "
            f"AND household_id != ''"), {"s": snapshot_id, **params})}
    return out


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _evacuee_rows(session: Session) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str], set[str]]:
    """(evacuee → linked 宛名番号, evacuee → review candidates, evacuee → household key, care-flagged)."""
    conn = session.connection()
    linked: dict[str, str] = {}
    review: dict[str, list[str]] = {}
    for eid, decision, rid, cands in conn.execute(text(
            "SELECT evacuee_id, decision, resident_id, candidates FROM matchdecision ORDER BY at, id")):
        linked.pop(eid, None)
        review.pop(eid, None)
        if decision in ("auto", "confirmed") and rid:
            linked[eid] = str(rid)
        elif decision == "review":
            review[eid] = [str(c.get("resident_id")) for c in _json_list(cands) if c.get("resident_id")]
            if rid:
                review[eid].append(str(rid))
    keys: dict[str, str] = {}
    care_flagged: set[str] = set()
    for eid, hk, care in conn.execute(text("SELECT id, household_key, care_flags FROM evacuee")):
        keys[eid] = hk or ""
        if _care_restricted(care):
            care_flagged.add(eid)
    return linked, review, keys, care_flagged


def _json_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [c for c in (value or []) if isinstance(c, dict)]


def _care_restricted(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return True  # unreadable: fail closed
    return isinstance(value, dict) and value.get("restricted") is True


_EV_CACHE: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}  # engine url → (stamp, rows)


def _evacuee_part(session: Session) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str], set[str]]:
    """`_evacuee_rows`, read again only when a decision, a registration or an edit happened (the
    search asks on every keystroke). The stamp is the newest rowid of three append-only tables
    (O(1) each): decisions are never updated, every edit of care flags or identity appends to the
    outbox."""
    conn = session.connection()
    stamp = tuple(conn.execute(text(
        "SELECT (SELECT max(rowid) FROM matchdecision), (SELECT max(rowid) FROM evacuee), "
        "(SELECT max(rowid) FROM outbox_event)")).one())
    url = str(conn.engine.url)
    with _LOCK:
        hit = _EV_CACHE.get(url)
    if hit is not None and hit[0] == stamp:
        return hit[1]  # type: ignore[return-value]
    rows = _evacuee_rows(session)
    with _LOCK:
        if len(_EV_CACHE) > 32:
            _EV_CACHE.clear()
        _EV_CACHE[url] = (stamp, rows)
    return rows


def protected(session: Session) -> Protected:
    """Everyone protected at this shelter right now (module notes)."""
    flagged, residents, hhs = _registry_part(session)
    linked, review, keys, care = _evacuee_part(session)
    ev_flagged = set(care) | {e for e, r in linked.items() if r in residents}
    ev_flagged |= {e for e, rs in review.items() if any(r in residents for r in rs)}
    evacuees = spread(ev_flagged, households(keys))
    res = set(residents) | {linked[e] for e in evacuees if e in linked}
    return Protected(set(flagged), res, ev_flagged, evacuees, set(hhs))


def shown_resident(who: Caller, p: Protected, resident_id: str | None) -> Shown:
    return decide(who, p.resident(resident_id))


def shown_evacuee(who: Caller, p: Protected, evacuee_id: str | None) -> Shown:
    return decide(who, p.evacuee(evacuee_id))


# --- certificates ---------------------------------------------------------------------------------

def certificate_facts(p: Protected, cert: Any) -> Facts:
    """A certificate is about its whole household: the applicant, every member, the 世帯番号."""
    ids = {str(cert.resident_id or "")} | {str(m.get("resident_id") or "") for m in (cert.members or [])}
    ids.discard("")
    return Facts(flagged=bool(ids & p.flagged_residents),
                 household_flagged=bool(ids & p.residents) or (bool(cert.household_id) and cert.household_id in p.households))


class MaskedCertificate:
    """A certificate as a caller who may not see the household's whereabouts reads it: address,
    location, identity note (may name a shelter) and device masked, like the hub's desk."""

    _MASK_TEXT = ("head_address", "location", "identity_note")

    def __init__(self, cert: Any) -> None:
        self._cert = cert

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_cert":
            raise AttributeError(name)
        value = getattr(self._cert, name)
        if name in self._MASK_TEXT:
            return MASK if value else value
        if name in ("device_id", "household_id"):
            return ""
        return value


def certificate_for(who: Caller, p: Protected, cert: Any) -> Any:
    """The certificate itself, or its masked reading (the rule decides)."""
    return cert if decide(who, certificate_facts(p, cert)).whereabouts else MaskedCertificate(cert)


def may_print_certificate(who: Caller, p: Protected, cert: Any) -> bool:
    """A PDF or print carries the household's address: only where the rule shows whereabouts."""
    return decide(who, certificate_facts(p, cert)).whereabouts


# --- registrations pulled from other shelters ---------------------------------------------------------

def retracted(session: Session) -> set[str]:
    """Evacuees of other shelters the hub withdrew (``evacuee.retracted``): protected by the hub's
    use of the same rule. What was pulled about them is deleted on arrival; this keeps any copy
    that slipped in later (an older page re-served) out of every answer too."""
    return {str(r[0]) for r in session.connection().execute(text(
        "SELECT DISTINCT evacuee_id FROM remote_event WHERE type = 'evacuee.retracted' AND evacuee_id IS NOT NULL"))}
