"""`/api/evacuees`: the roster as JSON — list, duplicates, register a household, detail, 退所/移動/再入所,
edits, staff match decisions, the review queue and the CSV export. Every call that shows a person
is audited with the records it returned."""

from __future__ import annotations

import io
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import get_session
from app.formats.tables import csv_writer
from app.models import Evacuee
from app.services import audit, evacuees
from app.services.errors import InvalidInput

router = APIRouter(prefix="/api", tags=["evacuees"], dependencies=[CSRF])


def _screen(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def evacuee_dict(ev: Evacuee, decision: Any = None) -> dict[str, Any]:
    return {
        "id": ev.id, "external_key": ev.external_key, "household_key": ev.household_key,
        "relationship": ev.relationship, "name": evacuees.full_name(ev), "name_raw": ev.name_raw,
        "name_kana": ev.name_kana or ev.name_kana_raw, "birth_date": ev.birth_date.isoformat() if ev.birth_date else None,
        "birth_raw": ev.birth_raw, "sex": ev.sex, "address": ev.address_raw, "phone": ev.phone_raw,
        "nationality": ev.nationality, "identifying_info": ev.identifying_info, "injury": ev.injury, "injury_state": ev.injury_state,
        "current_location": ev.current_location, "contact": ev.contact, "pets": ev.pets,
        "care_flags": dict(ev.care_flags or {}), "consent_relatives": ev.consent_relatives,
        "consent_acquaintances": ev.consent_acquaintances, "consent_public": ev.consent_public,
        "status": ev.status, "source": ev.source, "created_at": ev.created_at.isoformat(), "created_by": ev.created_by,
        "match": ({"decision": decision.decision, "resident_id": decision.resident_id, "score": decision.score,
                   "reasons": decision.reasons, "by_user": decision.by_user, "at": decision.at.isoformat()}
                  if decision is not None else None),
    }


@router.get("/evacuees")
def list_evacuees(request: Request, q: str = "", status: str = "in_shelter", care: str = "", decision: str = "",
                  limit: int = 500, user: CurrentUser = Depends(require("roster.view")),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    f = evacuees.RosterFilter(q=q, status=status, care=care, decision=decision)
    people = evacuees.list_evacuees(session, f, limit=max(1, min(limit, 5000)))
    dec = evacuees.latest_decisions(session, [e.id for e in people])
    audit.record(session, user, "search" if q else "view", _screen(request), [f"evacuee:{e.id}" for e in people],
                 {"q": q, "status": status, "care": care, "decision": decision, "count": len(people)})
    session.commit()
    return {"evacuees": [evacuee_dict(e, dec.get(e.id)) for e in people]}


@router.get("/evacuees/duplicates")
def duplicates(request: Request, name: str = "", birth: str = "", user: CurrentUser = Depends(require("register")),
               session: Session = Depends(get_session)) -> dict[str, Any]:
    """People already in this shelter with the same name and date of birth (intake warns while typing),
    and the other shelters that registered such a person (pulled from the hub)."""
    found = evacuees.find_duplicates(session, name, birth)
    elsewhere = evacuees.registered_elsewhere(session, name, birth)
    if found:
        audit.record(session, user, "search", _screen(request), [f"evacuee:{e.id}" for e in found],
                     {"query": {"name": name, "birth": birth}, "purpose": "duplicate check"})
        session.commit()
    return {"duplicates": [{"id": e.id, "name": evacuees.full_name(e), "name_kana": e.name_kana or e.name_kana_raw,
                            "birth_date": e.birth_date.isoformat() if e.birth_date else None,
                            "created_at": e.created_at.isoformat()} for e in found],
            "elsewhere": elsewhere}


class MemberIn(BaseModel):
    name: str = ""
    name_kana: str = ""
    birth_date: str = ""
    sex: str = ""
    address: str = ""
    phone: str = ""
    external_key: str = ""
    relationship: str = ""
    nationality: str = ""
    identifying_info: str = ""  # ⑦ 通称・旧姓・特徴
    injury: str = ""
    injury_state: str = ""
    current_location: str = ""
    contact: str = ""
    pets: str = ""
    care_flags: dict[str, Any] = Field(default_factory=dict)
    consent_relatives: Optional[bool] = None
    consent_acquaintances: Optional[bool] = None
    consent_public: Optional[bool] = None
    resident_id: Optional[str] = None  # a registry candidate the staff member picked: recorded as confirmed


class HouseholdIn(BaseModel):
    members: list[MemberIn]
    confirm_duplicates: bool = False


@router.post("/evacuees/household", status_code=201)
def register_household(body: HouseholdIn, request: Request, user: CurrentUser = Depends(require("register")),
                       session: Session = Depends(get_session)) -> dict[str, Any]:
    """Register a household (head first) and check everyone in; 409 on a likely duplicate unless confirmed."""
    from app.services.errors import Conflict
    from app.services.reconcile import match_now, staff_decide
    from app.services.roster import EvacueeInput, register_household as register

    if not body.members:
        raise InvalidInput("no members", "世帯の方を1人以上入力してください", "members")
    if not body.confirm_duplicates:
        for m in body.members:
            dups = evacuees.find_duplicates(session, m.name or m.name_kana, m.birth_date)
            if dups:
                raise Conflict(f"{m.name or m.name_kana} ({m.birth_date}) may already be registered here: "
                               "send confirm_duplicates=true", f"{m.name or m.name_kana} さんは既にこの避難所に登録されている可能性があります")
    inputs = [EvacueeInput(**m.model_dump(exclude={"resident_id"})) for m in body.members]
    regs = register(session, inputs, by=user.name)
    linked = []
    for m, ev in zip(body.members, regs):
        if m.resident_id:
            staff_decide(session, ev.id, "confirmed", m.resident_id, by=user.name, reasons=f"picked at intake by {user.name}")
            linked.append(m.resident_id)
    match_now(session, [e.id for e in regs])
    audit.record(session, user, "register", _screen(request),
                 [f"evacuee:{e.id}" for e in regs] + [f"resident:{r}" for r in linked],
                 {"household_key": regs[0].household_key, "members": len(regs), "linked": linked})
    session.commit()
    dec = evacuees.latest_decisions(session, [e.id for e in regs])
    return {"household_key": regs[0].household_key, "evacuees": [evacuee_dict(e, dec.get(e.id)) for e in regs]}


@router.get("/evacuees/export.csv")
def export_csv(request: Request, q: str = "", status: str = "all", care: str = "", decision: str = "",
               user: CurrentUser = Depends(require("export")), session: Session = Depends(get_session)) -> Response:
    """The roster as CSV (UTF-8 with BOM for Excel); the export is audited with every record in it."""
    f = evacuees.RosterFilter(q=q, status=status, care=care, decision=decision)
    people = evacuees.list_evacuees(session, f, limit=1_000_000)
    people = evacuees.exportable(session, people)  # the one 閲覧制限 rule: never in a file
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(evacuees.EXPORT_HEADER)
    w.writerows(evacuees.export_rows(session, people))
    audit.record(session, user, "export", _screen(request), [f"evacuee:{e.id}" for e in people],
                 {"format": "csv", "q": q, "status": status, "care": care, "count": len(people)})
    session.commit()
    return Response(("\ufeff" + buf.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="roster.csv"'})


@router.get("/evacuees/{evacuee_id}")
def get_evacuee(evacuee_id: str, request: Request, user: CurrentUser = Depends(require("roster.view")),
                session: Session = Depends(get_session)) -> dict[str, Any]:
    """One person with household, linked resident, stay history and every match decision."""
    d = evacuees.evacuee_detail(session, evacuee_id, reveal_restricted=user.can("restricted"))
    dec = evacuees.latest_decisions(session, [evacuee_id])
    subjects = [f"evacuee:{evacuee_id}"] + [f"evacuee:{m.id}" for m in d.household]
    if d.resident:
        subjects.append(f"resident:{d.resident['resident_id']}")
    audit.record(session, user, "view", _screen(request), subjects)
    session.commit()
    return {
        "evacuee": evacuee_dict(d.evacuee, dec.get(evacuee_id)),
        "household": [{"id": m.id, "name": evacuees.full_name(m), "relationship": m.relationship, "status": m.status}
                      for m in d.household],
        "resident": d.resident,
        "stays": [{"id": s.id, "kind": s.kind, "destination": s.destination, "at": s.at.isoformat(), "by_user": s.by_user}
                  for s in d.stays],
        "decisions": [{"id": x.id, "decision": x.decision, "resident_id": x.resident_id, "score": x.score,
                       "reasons": x.reasons, "by_user": x.by_user, "at": x.at.isoformat()} for x in d.decisions],
    }


class EvacueePatch(BaseModel):
    changes: dict[str, Any]
    seen: Optional[dict[str, Any]] = None  # values shown when the form was opened (the hub's "old")


@router.patch("/evacuees/{evacuee_id}")
def patch_evacuee(evacuee_id: str, body: EvacueePatch, request: Request,
                  user: CurrentUser = Depends(require("register")),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    diff = evacuees.update_evacuee(session, evacuee_id, body.changes, by=user.name, seen=body.seen)
    if diff:
        audit.record(session, user, "edit", _screen(request), [f"evacuee:{evacuee_id}"], {"fields": sorted(diff)})
    session.commit()
    return {"changed": sorted(diff)}


class StayIn(BaseModel):
    destination: str = ""


def _stay(session: Session, request: Request, user: CurrentUser, evacuee_id: str, kind: str, destination: str) -> dict[str, Any]:
    if kind == "check_out":
        stay = evacuees.check_out(session, evacuee_id, by=user.name, destination=destination)
    elif kind == "transfer":
        stay = evacuees.transfer(session, evacuee_id, destination, by=user.name)
    else:
        stay = evacuees.check_in(session, evacuee_id, by=user.name)
    audit.record(session, user, kind, _screen(request), [f"evacuee:{evacuee_id}"],
                 {"destination": stay.destination, "stay_id": stay.id})
    session.commit()
    return {"id": stay.id, "kind": stay.kind, "destination": stay.destination, "at": stay.at.isoformat()}


@router.post("/evacuees/{evacuee_id}/checkout")
def checkout(evacuee_id: str, request: Request, body: StayIn = StayIn(), user: CurrentUser = Depends(require("register")),
             session: Session = Depends(get_session)) -> dict[str, Any]:
    """退所 (destination optional)."""
    return _stay(session, request, user, evacuee_id, "check_out", body.destination)


@router.post("/evacuees/{evacuee_id}/transfer")
def transfer(evacuee_id: str, body: StayIn, request: Request, user: CurrentUser = Depends(require("register")),
             session: Session = Depends(get_session)) -> dict[str, Any]:
    """移動 to a named shelter or place (destination required)."""
    return _stay(session, request, user, evacuee_id, "transfer", body.destination)


@router.post("/evacuees/{evacuee_id}/checkin")
def checkin(evacuee_id: str, request: Request, user: CurrentUser = Depends(require("register")),
            session: Session = Depends(get_session)) -> dict[str, Any]:
    """再入所 of a person who had left."""
    return _stay(session, request, user, evacuee_id, "check_in", "")


class DecisionIn(BaseModel):
    decision: str  # confirmed | rejected | not_resident
    resident_id: Optional[str] = None
    reasons: str = ""


@router.post("/evacuees/{evacuee_id}/decision")
def decide(evacuee_id: str, body: DecisionIn, request: Request, user: CurrentUser = Depends(require("review")),
           session: Session = Depends(get_session)) -> dict[str, Any]:
    """A staff decision on a registry link (final: re-running the engine never overrides it)."""
    from app.services.reconcile import staff_decide

    d = staff_decide(session, evacuee_id, body.decision, body.resident_id, by=user.name, reasons=body.reasons)
    audit.record(session, user, "decide", _screen(request),
                 [f"evacuee:{evacuee_id}"] + ([f"resident:{body.resident_id}"] if body.resident_id else []),
                 {"decision": body.decision, "resident_id": d.resident_id})
    session.commit()
    return {"id": d.id, "decision": d.decision, "resident_id": d.resident_id, "at": d.at.isoformat()}


@router.get("/review")
def review_queue(request: Request, user: CurrentUser = Depends(require("review")),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    """Evacuees waiting for a staff decision, each with its top candidates (display fields, reasons)."""
    queue = evacuees.review_queue(session)
    items = []
    subjects = []
    for ev in queue[:50]:
        item = evacuees.review_item(session, ev.id, reveal_restricted=user.can("restricted"))
        if item is None:
            continue
        subjects.append(f"evacuee:{ev.id}")
        subjects += [f"resident:{c.get('resident_id')}" for c in item.candidates]
        items.append({"evacuee": evacuee_dict(ev, item.decision), "candidates": item.candidates})
    audit.record(session, user, "view", _screen(request), subjects, {"count": len(queue)})
    session.commit()
    return {"total": len(queue), "items": items}
