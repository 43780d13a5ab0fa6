"""名簿: search and filter the roster, a person's page with history, 退所 / 移動 / 再入所 / 修正,
the print view, and 名簿ファイル取込 (a volunteers' Excel/CSV roster)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import evacuees
from app.services.errors import AlreadyDone, AnpiError, FileFormatError
from app.services.evacuees import CARE_FLAGS, RosterFilter
from app.web.common import audit_view, db, redirect, render, upload_name
from app.web.intake import CONSENT_FIELDS

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

STATUS_CHOICES = {"in_shelter": "在所", "left": "退所", "transferred": "移動", "all": "すべて"}
UPLOAD_LIMIT = 50 * 1024 * 1024


def _filter(q: str, status: str, care: str, decision: str) -> RosterFilter:
    return RosterFilter(q=q.strip(), status=status if status in STATUS_CHOICES else "in_shelter",
                        care=care if care in CARE_FLAGS or care == "any" else "",
                        decision=decision if decision in evacuees.DECISION_JA else "")


def _rows(session: Session, people: list) -> list[dict[str, Any]]:
    dec = evacuees.latest_decisions(session, [e.id for e in people])
    return [{"ev": e, "name": evacuees.full_name(e), "care": evacuees.care_labels(e.care_flags or {}),
             "decision": dec.get(e.id)} for e in people]


@router.get("/roster", response_class=HTMLResponse)
def roster_list(request: Request, q: str = "", status: str = "in_shelter", care: str = "", decision: str = "",
                user: CurrentUser = Depends(require("roster.view")), session: Session = Depends(db)) -> HTMLResponse:
    f = _filter(q, status, care, decision)
    reveal = user.can("restricted")
    people = evacuees.list_evacuees(session, f, reveal_restricted=reveal)
    audit_view(session, request, user, "search" if f.q else "view", subjects=[f"evacuee:{e.id}" for e in people],
               detail={"q": f.q, "status": f.status, "care": f.care, "decision": f.decision, "count": len(people)})
    session.commit()
    return render(request, "roster.html", {"rows": _rows(session, people), "f": f, "statuses": STATUS_CHOICES,
                                           "care_flags": CARE_FLAGS, "decisions": evacuees.DECISION_JA,
                                           "hidden": _hidden_by_status(session, f, reveal)})


def _hidden_by_status(session: Session, f: RosterFilter, reveal: bool) -> int:
    """How many people the status filter hides (same search otherwise): the page says so plainly,
    so a person who was moved is never silently missing from a search."""
    if f.status == "all":
        return 0
    everyone = evacuees.list_evacuees(session, RosterFilter(f.q, "all", f.care, f.decision), limit=1_000_000,
                                      reveal_restricted=reveal)
    return sum(1 for e in everyone if e.status != f.status)


@router.get("/roster/print", response_class=HTMLResponse)
def roster_print(request: Request, q: str = "", status: str = "in_shelter", care: str = "", decision: str = "",
                 user: CurrentUser = Depends(require("roster.print")), session: Session = Depends(db)) -> HTMLResponse:
    from app.services.shelters import current_shelter

    f = _filter(q, status, care, decision)
    people = evacuees.list_evacuees(session, f, limit=100_000, reveal_restricted=user.can("restricted"))
    audit_view(session, request, user, "print", subjects=[f"evacuee:{e.id}" for e in people],
               detail={"q": f.q, "status": f.status, "care": f.care, "count": len(people)})
    shelter = current_shelter(session)
    session.commit()
    return render(request, "roster_print.html", {"rows": _rows(session, people), "f": f, "shelter": shelter,
                                                 "statuses": STATUS_CHOICES})


def _detail_page(request: Request, session: Session, user: CurrentUser, evacuee_id: str, *, error: str = "",
                 error_field: str = "", status_code: int = 200) -> HTMLResponse:
    from app.services import card_scan, shelter_list

    detail = evacuees.evacuee_detail(session, evacuee_id, reveal_restricted=user.can("restricted"))
    subjects = [f"evacuee:{evacuee_id}"] + [f"evacuee:{m.id}" for m in detail.household]
    if detail.resident:
        subjects.append(f"resident:{detail.resident['resident_id']}")
    audit_view(session, request, user, subjects=subjects)
    session.commit()
    return render(request, "person.html", {
        "d": detail, "ev": detail.evacuee, "name": evacuees.full_name(detail.evacuee),
        "care": evacuees.care_labels(detail.evacuee.care_flags or {}), "stay_ja": evacuees.STAY_JA,
        "decision_ja": evacuees.DECISION_JA, "status_ja": evacuees.STATUS_JA, "sex_ja": evacuees.SEX_JA,
        "destinations": [v for v in shelter_list.list_shelters(session) if not v.own],
        "OTHER": shelter_list.OTHER,
        "error": error, "error_field": error_field, "full_name": evacuees.full_name,
        "arrivals": card_scan.arrivals_of(session, evacuee_id),
    }, status_code=status_code)


def _with_flags(request: Request, session: Session, user: CurrentUser, ctx: dict[str, Any]) -> dict[str, Any]:
    """The open flags (cells kept as typed) under the import form, for staff to check."""
    from app.services.roster import open_flags

    flags = open_flags(session)
    if flags:
        audit_view(session, request, user, "view", subjects=sorted({f"evacuee:{f['evacuee_id']}" for f in flags}),
                   detail={"roster_flags": len(flags)})
        session.commit()
    return {**ctx, "flags": flags}


@router.get("/roster/import", response_class=HTMLResponse)
def roster_import_page(request: Request, user: CurrentUser = Depends(require("roster.import")),
                       session: Session = Depends(db)) -> HTMLResponse:
    return render(request, "roster_import.html", _with_flags(request, session, user, {"result": None}))


@router.post("/roster/flags/{flag_id}/resolve", response_class=HTMLResponse)
def roster_flag_resolve(request: Request, flag_id: str, user: CurrentUser = Depends(require("roster.import")),
                        session: Session = Depends(db)) -> Response:
    from app.services.roster import resolve_flag

    try:
        flag = resolve_flag(session, flag_id)
    except AnpiError as exc:
        ctx = _with_flags(request, session, user, {"result": None, "error": exc.message_ja, "file_name": "確認"})
        return render(request, "roster_import.html", ctx, status_code=404)
    audit_view(session, request, user, "roster_flag_resolved", subjects=[f"evacuee:{flag.evacuee_id}"],
               detail={"line": flag.line, "field": flag.field})
    session.commit()
    return redirect("/roster/import#flags")


@router.post("/roster/import", response_class=HTMLResponse)
def roster_import_submit(request: Request, file: UploadFile = File(...),
                         user: CurrentUser = Depends(require("roster.import")),
                         session: Session = Depends(db)) -> HTMLResponse:
    from app.services.roster import import_roster

    name = upload_name(file.filename, "roster.csv")
    ctx: dict[str, Any] = {"result": None, "file_name": name}
    with tempfile.TemporaryDirectory(prefix="anpi-roster-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        if path.stat().st_size > UPLOAD_LIMIT:
            ctx["error"] = "ファイルが大きすぎます (50MBまで)"
            return render(request, "roster_import.html", ctx, status_code=413)
        try:
            result = import_roster(request.app.state.engine, path, by=user.name, rejects_out=Path(tmp) / "rejects.csv")
        except AlreadyDone as exc:
            ctx["error"] = exc.message_ja
            return render(request, "roster_import.html", ctx, status_code=409)
        except FileFormatError as exc:
            ctx["error"] = "ファイルを読み取れません"
            ctx["problems"] = [p.ja() for p in exc.problems]
            return render(request, "roster_import.html", ctx, status_code=422)
        except AnpiError as exc:
            ctx["error"] = exc.message_ja
            return render(request, "roster_import.html", ctx, status_code=422)
    audit_view(session, request, user, "roster_import", detail={
        "file": name, "import_id": result.import_id, "rows": result.rows, "accepted": result.accepted,
        "rejected": len({r.line for r in result.rejects})})
    session.commit()
    ctx["result"] = result
    ctx["rejects"] = [{"line": r.line, "field": r.field, "message": r.message_ja, "value": r.value, "done": done}
                      for done, rows in (("登録しない", result.rejects), ("登録済みの人", result.duplicates))
                      for r in rows]
    return render(request, "roster_import.html", _with_flags(request, session, user, ctx))


@router.get("/roster/{evacuee_id}", response_class=HTMLResponse)
def person_page(request: Request, evacuee_id: str, user: CurrentUser = Depends(require("roster.view")),
                session: Session = Depends(db)) -> HTMLResponse:
    return _detail_page(request, session, user, evacuee_id)


def _stay_action(request: Request, session: Session, user: CurrentUser, evacuee_id: str, action: str,
                 destination: str) -> Response:
    try:
        if action == "check_out":
            stay = evacuees.check_out(session, evacuee_id, by=user.name, destination=destination)
        elif action == "transfer":
            stay = evacuees.transfer(session, evacuee_id, destination, by=user.name)
        else:
            stay = evacuees.check_in(session, evacuee_id, by=user.name)
        audit_view(session, request, user, action, subjects=[f"evacuee:{evacuee_id}"],
                   detail={"destination": stay.destination, "stay_id": stay.id})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _detail_page(request, session, user, evacuee_id, error=exc.message_ja,
                            error_field=getattr(exc, "field", "") or action, status_code=422)
    return redirect(f"/roster/{evacuee_id}?done={action}")


@router.post("/roster/{evacuee_id}/checkout", response_class=HTMLResponse)
def checkout(request: Request, evacuee_id: str, destination: str = Form(""),
             user: CurrentUser = Depends(require("register")), session: Session = Depends(db)) -> Response:
    return _stay_action(request, session, user, evacuee_id, "check_out", destination)


@router.post("/roster/{evacuee_id}/transfer", response_class=HTMLResponse)
def transfer(request: Request, evacuee_id: str, destination: str = Form(""), destination_other: str = Form(""),
             user: CurrentUser = Depends(require("register")), session: Session = Depends(db)) -> Response:
    """移動: to a shelter of the list (its code), or 「その他」 with the place typed beside it."""
    from app.services import shelter_list

    try:
        where = shelter_list.destination_for(session, destination, destination_other)
    except AnpiError as exc:
        session.rollback()
        return _detail_page(request, session, user, evacuee_id, error=exc.message_ja,
                            error_field=getattr(exc, "field", "") or "destination", status_code=422)
    return _stay_action(request, session, user, evacuee_id, "transfer", where)


@router.post("/roster/{evacuee_id}/checkin", response_class=HTMLResponse)
def checkin(request: Request, evacuee_id: str, user: CurrentUser = Depends(require("register")),
            session: Session = Depends(db)) -> Response:
    return _stay_action(request, session, user, evacuee_id, "check_in", "")


def _edit_values(ev: Any) -> dict[str, Any]:
    vals = {"name": ev.name_raw, "name_kana": ev.name_kana_raw, "birth_date": ev.birth_raw, "sex": ev.sex_raw,
            "address": ev.address_raw, "phone": ev.phone_raw}
    for k in evacuees.EDITABLE:
        if k not in vals:
            vals[k] = getattr(ev, k)
    for k in CONSENT_FIELDS:
        vals[k] = {True: "yes", False: "no"}.get(getattr(ev, k), "")
    vals["care"] = dict(ev.care_flags or {})
    vals["allergy_detail"] = (ev.care_flags or {}).get("allergy_detail", "")
    return vals


@router.get("/roster/{evacuee_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, evacuee_id: str, user: CurrentUser = Depends(require("register")),
              session: Session = Depends(db)) -> HTMLResponse:
    ev = evacuees.get_evacuee(session, evacuee_id)
    audit_view(session, request, user, subjects=[f"evacuee:{ev.id}"])
    session.commit()
    return render(request, "person_edit.html", {"ev": ev, "v": _edit_values(ev), "errors": {},
                                                "care_flags": CARE_FLAGS, "name": evacuees.full_name(ev)})


@router.post("/roster/{evacuee_id}/edit", response_class=HTMLResponse)
async def edit_submit(request: Request, evacuee_id: str, user: CurrentUser = Depends(require("register")),
                      session: Session = Depends(db)) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    items = {k: v for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(_edit, request, evacuee_id, user, session, items)


def _edit(request: Request, evacuee_id: str, user: CurrentUser, session: Session, items: dict[str, str]) -> Response:
    ev = evacuees.get_evacuee(session, evacuee_id)
    changes: dict[str, Any] = {k: items.get(k, "") for k in evacuees.EDITABLE}
    care = {k: True for k in CARE_FLAGS if items.get(f"care-{k}")}
    if care.get("allergy") and items.get("allergy_detail", "").strip():
        care["allergy_detail"] = items["allergy_detail"].strip()
    changes["care_flags"] = care
    for k in CONSENT_FIELDS:
        changes[k] = {"yes": True, "no": False}.get(items.get(k, ""))
    seen = {k[5:]: v for k, v in items.items() if k.startswith("seen-")}
    try:
        diff = evacuees.update_evacuee(session, evacuee_id, changes, by=user.name, seen=seen or None)
        if diff:
            audit_view(session, request, user, "edit", subjects=[f"evacuee:{evacuee_id}"],
                       detail={"fields": sorted(diff)})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        ev = evacuees.get_evacuee(session, evacuee_id)
        v = {**_edit_values(ev), **items, "care": care}
        field = getattr(exc, "field", "") or "name"
        return render(request, "person_edit.html", {"ev": ev, "v": v, "errors": {field: exc.message_ja},
                                                    "care_flags": CARE_FLAGS, "name": evacuees.full_name(ev)},
                      status_code=422)
    return redirect(f"/roster/{evacuee_id}?done=edit")
