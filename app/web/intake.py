"""受付 (intake): a household at once, with the items of 様式第1号 and live registry candidates.

The form is plain HTML that works without script; the script adds the live candidates, the
duplicate warning while typing, the add-member button and the server-side draft.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from app.api.auth import CSRF, CurrentUser, require
from app.models import Evacuee
from app.services import evacuees
from app.services.errors import AnpiError
from app.services.evacuees import CARE_FLAGS
from app.web.common import audit_view, db, redirect, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

DRAFT_FORM = "intake"
MEMBER_FIELDS = ("name", "name_kana", "birth_date", "sex", "relationship", "nationality", "identifying_info", "injury", "injury_state",
                 "allergy_detail", "consent_relatives", "consent_acquaintances", "consent_public", "resident_id",
                 "resident_label")
HOUSEHOLD_FIELDS = ("address", "current_location", "contact", "pets")
CONSENT_FIELDS = ("consent_relatives", "consent_acquaintances", "consent_public")
_MEMBER_KEY = re.compile(r"^m-(\d+)-(.+)$")
MAX_MEMBERS = 20
#: what the engine decided at registration, as the desk reads it on the done box
OUTCOME_JA = {"auto": "台帳と照合済み", "confirmed": "台帳と照合済み", "review": "照合確認待ち", "none": "台帳に該当なし"}


def empty_member(head: bool = False) -> dict[str, Any]:
    m: dict[str, Any] = {f: "" for f in MEMBER_FIELDS}
    m["care"] = {}
    if head:
        m["relationship"] = "世帯主"
    return m


def form_state(items: Mapping[str, Any]) -> dict[str, Any]:
    """The intake form (or a saved draft) as {household: {...}, members: [{...}, ...]}."""
    household = {f: str(items.get(f, "") or "") for f in HOUSEHOLD_FIELDS}
    members: dict[int, dict[str, Any]] = {}
    for key, value in items.items():
        m = _MEMBER_KEY.match(key)
        if not m:
            continue
        idx, fld = int(m.group(1)), m.group(2)
        if idx >= 100:
            continue
        mem = members.setdefault(idx, empty_member())
        if fld.startswith("care-") and fld[5:] in CARE_FLAGS:
            mem["care"][fld[5:]] = bool(value)
        elif fld in MEMBER_FIELDS:
            mem[fld] = str(value or "")
    ordered = [members[i] for i in sorted(members)][:MAX_MEMBERS]
    keep = [m for m in ordered if any(m[f].strip() for f in ("name", "name_kana", "birth_date"))]
    if not keep:
        keep = [ordered[0] if ordered else empty_member(head=True)]
    return {"household": household, "members": keep, "confirm_duplicates": bool(items.get("confirm_duplicates"))}


def _consent(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def member_input(member: dict[str, Any], household: dict[str, str]):  # type: ignore[no-untyped-def]
    from app.services.roster import EvacueeInput

    care: dict[str, Any] = {k: True for k, v in member["care"].items() if v}
    if care.get("allergy") and member.get("allergy_detail", "").strip():
        care["allergy_detail"] = member["allergy_detail"].strip()
    return EvacueeInput(
        name=member["name"].strip(), name_kana=member["name_kana"].strip(), birth_date=member["birth_date"].strip(),
        sex=member["sex"], address=household["address"].strip(), phone=household["contact"].strip(),
        relationship=member["relationship"].strip(), nationality=member["nationality"].strip(),
        identifying_info=member.get("identifying_info", "").strip(),
        injury=member["injury"].strip(), injury_state=member["injury_state"].strip(),
        current_location=household["current_location"].strip(), contact=household["contact"].strip(),
        pets=household["pets"].strip(), care_flags=care,
        consent_relatives=_consent(member["consent_relatives"]),
        consent_acquaintances=_consent(member["consent_acquaintances"]),
        consent_public=_consent(member["consent_public"]),
    )


def validate(state: dict[str, Any]) -> dict[str, str]:
    """Japanese messages keyed by form field name (m-0-birth_date …), for display next to the field."""
    from app.services.roster import parse_evacuee

    errors: dict[str, str] = dict(evacuees.too_long(state["household"]))
    for i, m in enumerate(state["members"]):
        _parsed, errs = parse_evacuee(member_input(m, state["household"]))
        for e in errs:
            errors.setdefault(f"m-{i}-{e.field}", e.message_ja)
        for k, msg in evacuees.too_long(m).items():
            errors.setdefault(f"m-{i}-{k}", msg)
    return errors


def duplicates(session: Session, state: dict[str, Any]) -> dict[int, list[Evacuee]]:
    out = {}
    for i, m in enumerate(state["members"]):
        found = evacuees.find_duplicates(session, m["name"] or m["name_kana"], m["birth_date"])
        if found:
            out[i] = found
    return out


def page(request: Request, state: dict[str, Any], *, errors: dict[str, str] | None = None,
         dups: dict[int, list[Evacuee]] | None = None, done: list[Evacuee] | None = None,
         status_code: int = 200, message: str = "", outcome: dict[str, str] | None = None,
         self_entry: dict[str, Any] | None = None) -> HTMLResponse:
    """The intake screen; `self_entry` ({id, ticket}) when it finishes a 本人記入 entry."""
    return render(request, "intake.html", {
        "state": state, "errors": errors or {}, "dups": dups or {}, "done": done or [], "care_flags": CARE_FLAGS,
        "message": message, "max_length": evacuees.MAX_LENGTH, "outcome": outcome or {}, "self_entry": self_entry,
    }, status_code=status_code)




@router.get("/intake", response_class=HTMLResponse)
def intake_form(request: Request, done: str = "", user: CurrentUser = Depends(require("register")),
                session: Session = Depends(db)) -> HTMLResponse:
    draft = request.app.state.sessions.get_draft(user.id, DRAFT_FORM)
    state = form_state(draft or {})
    registered: list[Evacuee] = []
    if done:
        registered = list(session.exec(select(Evacuee).where(Evacuee.household_key == done).order_by(Evacuee.created_at)))
        if registered:
            audit_view(session, request, user, subjects=[f"evacuee:{e.id}" for e in registered],
                       detail={"household_key": done})
            session.commit()
    outcome = {ev_id: OUTCOME_JA.get(d.decision, "") for ev_id, d in
               evacuees.latest_decisions(session, [e.id for e in registered]).items()}
    return page(request, state, done=registered, outcome=outcome)


@router.post("/intake", response_class=HTMLResponse)
async def intake_submit(request: Request, user: CurrentUser = Depends(require("register")),
                        session: Session = Depends(db)) -> Response:
    form = await request.form()
    state = form_state({k: v for k, v in form.items() if isinstance(v, str)})
    entry_id = form.get("self_entry")
    entry = {"id": entry_id, "ticket": form.get("self_ticket", "")} if isinstance(entry_id, str) and entry_id else None
    return await run_in_threadpool(_register, request, user, session, state, entry)


def _register(request: Request, user: CurrentUser, session: Session, state: dict[str, Any],
              self_entry: dict[str, Any] | None = None) -> Response:
    from app.services.reconcile import match_now, staff_decide
    from app.services.roster import register_household
    from app.services.self_registration import finish

    errors = validate(state)
    if errors:
        return page(request, state, errors=errors, status_code=422, message="入力を確認してください", self_entry=self_entry)
    dups = duplicates(session, state)
    if dups and not state["confirm_duplicates"]:
        return page(request, state, dups=dups, status_code=409, self_entry=self_entry,
                     message="すでにこの避難所に登録されている方がいます。確認のうえ「重複を確認した」に印を付けて登録してください")
    try:
        members = [member_input(m, state["household"]) for m in state["members"]]
        registered = register_household(session, members, by=user.name)
        linked = []
        for m, ev in zip(state["members"], registered):
            rid = m.get("resident_id", "").strip()
            if rid:
                staff_decide(session, ev.id, "confirmed", rid, by=user.name, reasons=f"picked at intake by {user.name}")
                linked.append(rid)
        match_now(session, [e.id for e in registered])
        if self_entry:
            finish(session, self_entry["id"], registered[0].household_key, by=user.name)
        audit_view(session, request, user, "register",
                   subjects=[f"evacuee:{e.id}" for e in registered] + [f"resident:{r}" for r in linked]
                   + ([f"self_entry:{self_entry['id']}"] if self_entry else []),
                   detail={"household_key": registered[0].household_key, "members": len(registered),
                           "linked": linked, "duplicates_confirmed": bool(dups)})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        field = getattr(exc, "field", "")
        return page(request, state, errors={f"m-0-{field}": exc.message_ja} if field else {}, status_code=422,
                     message=exc.message_ja, self_entry=self_entry)
    request.app.state.sessions.drop_draft(user.id, DRAFT_FORM)
    return redirect(f"/intake?done={registered[0].household_key}")
