"""安否照会 (safety inquiries): who may be told what about an evacuee, and the desk's log.

Someone at the desk asks whether a person is safe. What may be said follows the consents the
person gave at intake on the national form 様式第1号 (⑫ ⑬ ⑭) and the inquirer's relationship;
a person under 閲覧制限 (DV等支援措置) is never disclosed at all. The rule itself is one pure,
table-driven function (`disclosable_items`) so it can be read, reviewed and tested as a table.

Why "no information" looks the same whatever the reason: an abuser looking for a protected
person must not learn from the answer whether the person is here and protected, here and
refusing, or not here. The desk screen therefore shows one wording for every negative answer;
only the log (`Inquiry.outcome`, the audit entry) records the real reason, for auditors.

Choices where the national rules leave it open (documented because they decide disclosures):
- ⑫/⑬ None (not asked) means "not refused": relatives and acquaintances get their items.
  ⑭ None means "no consent": anyone else gets nothing. This mirrors the form's own wording
  (⑫ ⑬ are refusals of an answer that is given by default; ⑭ is an explicit consent).
- Each relationship is decided by its own consent only. An explicit refusal (⑫ False for a
  relative, ⑬ False for an acquaintance) is never widened by ⑭ True: a person who refused
  relatives may be hiding from one.
- 閲覧制限 is the one rule (`app.services.disclosure`, fail-closed): an evacuee counts as restricted
  when the resident linked by the newest decision (auto / confirmed) is flagged in *any* imported
  snapshot (a later backup whose vendor dropped the column must not lift a protection), while the
  newest decision is still "review" and any of its candidates is, and when the person's registry
  household or the people who registered with them (household key) hold a flagged member: a
  child's ⑩ would say where the mother is.
- The person asked about must be identified, not guessed: the name (kanji, kana or romaji,
  compared with the matching engine's normalisation) must agree, nothing given may contradict
  the record, and the date of birth or the address must positively agree. The record is the
  registration as typed *and*, when the newest match decision links the evacuee to a resident
  (auto / confirmed), that resident's entry in the newest snapshot: rosters are often typed in
  kana or romaji, or without a date of birth, while the registry has the kanji name, the reading
  and the date. A detail agrees when it agrees with either and rules the person out when it
  contradicts every source that records it (`inquiry_rules.fit`). Two or more such
  people, or only people whose record cannot confirm the detail given, make the desk ask for
  more detail. Whether the desk is asked for more detail depends only on people who are *not*
  restricted, so the prompt itself reveals nothing about a protected person; if a restricted
  person could be the one meant, the answer is "no information".
- Registrations pulled from other shelters (`evacuees.registered_elsewhere`) are not answered
  here: their 閲覧制限 status and injury items are not known on this laptop. The hub's desk
  (`app.hub_inquiry`, `anpi hub inquiry`, `POST /v1/hq/inquiries`) answers across every shelter
  of the municipality with these same rules.

The pure rules (matrix, identification, item wording, form checks, audit shape) live in
`app.services.inquiry_rules` and the desk's flow (find, decide, log) in `app.services.inquiry_desk`,
both shared with the hub; this module is the shelter's store for them (`ShelterInquiries`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlmodel import Session, select

from app.models import Evacuee, Inquiry, Resident, Shelter, StayEvent
from app.services import audit, disclosure, inquiry_desk as desk
from app.services.errors import InvalidInput, NotFound
from app.services.evacuees import full_name, latest_decisions, newest_snapshot
# the rules themselves are shared with the hub's desk (app.hub_inquiry); re-exported for the faces
from app.services.inquiry_rules import (
    ALL_ITEMS, BASIC_ITEMS, CIRCLED, ID_PROOFS, ITEMS, MAX_LEN, NOT_RECORDED, OUTCOME_JA, RELATIONSHIPS, RULES,
    SCRIPT_ANSWERED_HEAD, SCRIPT_ANSWERED_TAIL, SCRIPT_NO_INFORMATION, Answer, Consents, InquiryRequest, ItemSource,
    Outcome, PersonFacts, Rule, address_relation, answer_for, answer_text, birth_relation, birth_text,
    check_request, decide, disclosable_items, disclosed_items, facts_from_birth, fit, location_text, log_detail,
    name_agrees, name_keys, parse_asked, request_errors, require_valid, resident_facts, search_detail,
)
from app.services.inquiry_rules import item_values as values_of
from app.services.inquiry_desk import fits
from app.services.shelters import current_shelter
from matching.kana import to_katakana

__all__ = [  # the shared rules, re-exported for the shelter's faces and tests
    "ALL_ITEMS", "BASIC_ITEMS", "CIRCLED", "ID_PROOFS", "ITEMS", "MAX_LEN", "NOT_RECORDED", "OUTCOME_JA",
    "RELATIONSHIPS", "RULES", "SCRIPT_ANSWERED_HEAD", "SCRIPT_ANSWERED_TAIL", "SCRIPT_NO_INFORMATION", "Answer",
    "Consents", "InquiryRequest", "Outcome", "Rule", "address_relation", "birth_relation", "check_request",
    "disclosable_items", "name_agrees", "request_errors",
    # the shelter's own
    "Found", "InquiryResult", "answer_inquiry", "disclosed", "evacuee_facts", "find_person", "get_inquiry",
    "item_values", "linked_facts", "list_inquiries", "restricted_evacuees", "ShelterInquiries",
]

# --- what the desk reads aloud ----------------------------------------------------------------


def _location_text(session: Session, ev: Evacuee) -> str:
    shelter = session.get(Shelter, ev.shelter_id)
    dest = ""
    if ev.status != "in_shelter":
        last = session.exec(select(StayEvent).where(StayEvent.evacuee_id == ev.id)
                            .order_by(StayEvent.at.desc(), StayEvent.id.desc())).first()  # type: ignore[attr-defined]
        dest = last.destination if last else ""
    return location_text(ev.status, shelter.name if shelter else "", ev.current_location, dest)


def item_values(session: Session, ev: Evacuee) -> dict[int, str]:
    """Every 様式第1号 item ① … ⑪ of an evacuee as the desk would say it ("" when not recorded)."""
    return values_of(ItemSource(
        name=full_name(ev), kana=ev.name_kana or to_katakana(ev.name_kana_raw),
        birth=birth_text(ev.birth_date if ev.birth_kind == "day" else None, ev.birth_raw), sex=ev.sex,
        address=ev.address_raw or ev.address, nationality=ev.nationality, identifying_info=ev.identifying_info,
        injury=ev.injury, injury_state=ev.injury_state, location=_location_text(session, ev),
        contact=ev.contact or ev.phone_raw))


def disclosed(session: Session, ev: Evacuee, items: Iterable[int]) -> list[dict[str, Any]]:
    return disclosed_items(item_values(session, ev), items)


# --- finding the person asked about ---------------------------------------------------------

def evacuee_facts(ev: Evacuee) -> PersonFacts:
    """What the registration as typed says. The year range of an age ("36歳") was worked out when it
    was typed; a row without one is read from what was typed, against the day it was registered."""
    names = name_keys(ev.name_raw, f"{ev.family_name} {ev.given_name}", ev.name_kana, to_katakana(ev.name_kana_raw))
    day = ev.birth_date if ev.birth_kind == "day" else None
    if ev.birth_date is not None and day is None:  # a date kept without being a full day: its year still counts
        return PersonFacts(names, None, (ev.birth_date.year, ev.birth_date.year), ev.address or ev.address_raw)
    registered = ev.created_at.date() if ev.created_at is not None else None
    return facts_from_birth(names, ev.address or ev.address_raw, day=day, raw=ev.birth_raw or "",
                            year_min=ev.birth_year_min, year_max=ev.birth_year_max, today=registered)


def linked_facts(session: Session, evacuee_ids: list[str] | None = None) -> dict[str, PersonFacts]:
    """evacuee id → the registry facts of the resident its newest decision links it to (auto or
    confirmed), as the newest snapshot records them; evacuees without such a link are absent.

    Only the linked residents are read (by 宛名番号 within the newest snapshot), never the registry."""
    snap = newest_snapshot(session)
    if snap is None:
        return {}
    rid_of = {ev_id: d.resident_id for ev_id, d in latest_decisions(session, evacuee_ids).items()
              if d.decision in ("auto", "confirmed") and d.resident_id}
    if not rid_of:
        return {}
    rids = sorted(set(rid_of.values()))
    facts: dict[str, PersonFacts] = {}
    for i in range(0, len(rids), 500):  # well inside SQLite's limit on bound parameters
        for r in session.exec(select(Resident).where(Resident.snapshot_id == snap.id,
                                                     Resident.resident_id.in_(rids[i:i + 500]))):  # type: ignore[attr-defined]
            facts[r.resident_id] = resident_facts(
                family=r.family_name, given=r.given_name, family_kana=r.family_name_kana,
                given_kana=r.given_name_kana, alpha=r.alpha_name, birth_day=r.birth_date, birth_raw=r.birth_raw,
                address=r.address, as_of=snap.as_of, gaiji=snap.gaiji_map)
    return {ev_id: facts[rid] for ev_id, rid in rid_of.items() if rid in facts}


def restricted_evacuees(session: Session, evacuee_ids: list[str]) -> set[str]:
    """Which of these evacuees the answer may never name: the one 閲覧制限 rule for an answer that
    leaves the desk (`app.services.disclosure`) — flagged, linked or pending review to a flagged
    resident, or in a registry or intake household with a flagged member (fail closed)."""
    prot = disclosure.protected(session)
    return {e for e in evacuee_ids if not disclosure.shown_evacuee(disclosure.CALLER_PUBLICATION, prot, e).listed}


@dataclass
class Found:
    """What the search decided: `kind` one / none / restricted / ambiguous."""

    kind: Literal["one", "none", "restricted", "ambiguous"]
    evacuee: Evacuee | None = None
    candidates: list[str] = field(default_factory=list)  # every evacuee id considered (for the log)
    restricted: list[str] = field(default_factory=list)


def find_person(session: Session, name: str, kana: str = "", birth: str = "", address: str = "") -> Found:
    """The one evacuee the inquirer means, decided without guessing (see the module notes)."""
    asked = parse_asked(name, kana, birth, address)
    if not asked.names:
        return Found("none")
    linked = linked_facts(session)
    evacuees = list(session.exec(select(Evacuee).order_by(Evacuee.created_at, Evacuee.id)))
    how = fits(asked, ((ev.id, evacuee_facts(ev), linked.get(ev.id)) for ev in evacuees))
    strong = [ev.id for ev in evacuees if how.get(ev.id) == "strong"]
    weak = [ev.id for ev in evacuees if how.get(ev.id) == "weak"]
    everyone = strong + weak
    kind, one, restricted = decide(strong, weak, restricted_evacuees(session, everyone))
    return Found(kind, next(ev for ev in evacuees if ev.id == one) if one else None, everyone, restricted)


# --- recording an inquiry -------------------------------------------------------------------

@dataclass
class InquiryResult:
    """Either the recorded inquiry, or `needs_detail` (nothing recorded but the audit entry)."""

    inquiry: Inquiry | None
    needs_detail: bool = False


def _who(user: Any) -> str:
    return user if isinstance(user, str) else str(getattr(user, "name", "") or "")


def answer_inquiry(session: Session, req: InquiryRequest, *, user: Any, screen: str) -> InquiryResult:
    """Find the person, decide what may be said, and record the inquiry and its audit entry
    (`inquiry_desk.answer_inquiry`, the same flow as the hub's desk).

    Everything is added to the caller's transaction (the caller commits once, so the inquiry and
    its audit entry are stored together or not at all). When the person cannot be identified and
    the desk has not given up, nothing is answered: the desk is asked for more detail.
    """
    return desk.answer_inquiry(ShelterInquiries(session, user=user, screen=screen), req)


class ShelterInquiries:
    """`inquiry_desk.InquiryStore` over the shelter's session: this laptop's own evacuees; the
    inquiry row and its audit entry join the caller's transaction."""

    def __init__(self, session: Session, *, user: Any, screen: str) -> None:
        self.session, self.user, self.screen = session, user, screen

    def find(self, r: InquiryRequest) -> Found:
        return find_person(self.session, r.sought_name, r.sought_kana, r.sought_birth, r.sought_address)

    def consents(self, found: Found) -> Consents | None:
        return Consents.of(found.evacuee) if found.evacuee is not None else None

    def disclosed(self, found: Found, shown: Sequence[int]) -> tuple[str | None, list[dict[str, Any]]]:
        ev = found.evacuee
        return (ev.id, disclosed(self.session, ev, shown)) if ev is not None else (None, [])

    def log_search(self, r: InquiryRequest, found: Found) -> InquiryResult:
        audit.record(self.session, self.user, "inquiry_search", self.screen,
                     [f"evacuee:{i}" for i in found.candidates], search_detail(r, found.candidates, found.restricted))
        return InquiryResult(None, needs_detail=True)

    def log_answer(self, r: InquiryRequest, found: Found, *, outcome: str, evacuee_id: str | None,
                   items: list[dict[str, Any]], text: str) -> InquiryResult:
        shelter = current_shelter(self.session)
        inq = Inquiry(by_user=_who(self.user), shelter_id=shelter.id, inquirer_name=r.inquirer_name,
                      inquirer_address=r.inquirer_address, inquirer_phone=r.inquirer_phone, id_proof=r.id_proof,
                      id_proof_note=r.id_proof_note, relationship=r.relationship, purpose=r.purpose,
                      sought_name=r.sought_name, sought_kana=r.sought_kana, sought_birth=r.sought_birth,
                      sought_address=r.sought_address, evacuee_id=evacuee_id, items_disclosed=items,
                      outcome=outcome, answer_text=text)
        self.session.add(inq)
        self.session.flush()
        audit.record(self.session, self.user, "inquiry", self.screen,
                     [f"inquiry:{inq.id}"] + [f"evacuee:{i}" for i in found.candidates],
                     log_detail(inquiry_id=inq.id, r=r, outcome=outcome, evacuee_id=evacuee_id, items=items,
                                candidates=found.candidates, restricted=found.restricted))
        return InquiryResult(inq)


# --- reading the log ------------------------------------------------------------------------

def get_inquiry(session: Session, inquiry_id: str) -> Inquiry:
    inq = session.get(Inquiry, inquiry_id)
    if inq is None:
        raise NotFound(f"no inquiry {inquiry_id}", "この照会の記録はありません")
    return inq


def list_inquiries(session: Session, *, outcome: str = "", limit: int = 500) -> list[Inquiry]:
    """Newest first; `outcome` narrows to one real outcome (answered, refused, …)."""
    q = select(Inquiry)
    if outcome:
        if outcome not in OUTCOME_JA:
            raise InvalidInput(f"unknown outcome {outcome!r}", "回答区分が正しくありません", "outcome")
        q = q.where(Inquiry.outcome == outcome)
    return list(session.exec(q.order_by(Inquiry.at.desc(), Inquiry.id.desc()).limit(limit)))  # type: ignore[attr-defined]
