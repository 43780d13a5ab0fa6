"""安否照会 desk (inquirer, consent-driven answer, log). Owner: inquiry-desk work.

The desk types who is asking and about whom; the answer screen then shows only what may be said
(the allowed 様式第1号 items with their numbers, and the script to read aloud). The answer is
rendered from the stored inquiry, never from live data, so what was said can be shown again
exactly. Nothing on the desk's screens tells "not here" from "refused" or "protected".
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.api.auth import CSRF, CurrentUser, require
from app.services import inquiry
from app.services.errors import AnpiError
from app.web.common import audit_view, db, redirect, render, screen

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

TEXT_FIELDS = tuple(f.name for f in fields(inquiry.InquiryRequest) if f.name != "give_up")
NEEDS_DETAIL = ("お尋ねの方を特定できません。生年月日・住所・フリガナなど、もう少し詳しく伺ってから、もう一度「照会する」を"
                "押してください。これ以上わからない場合は「これ以上の情報はない」に印を付けて押してください。")


def _form(request: Request, values: dict[str, str], *, errors: dict[str, str] | None = None,
          needs_detail: bool = False, status_code: int = 200) -> HTMLResponse:
    return render(request, "inquiry.html", {
        "v": values, "errors": errors or {}, "needs_detail": needs_detail, "needs_detail_text": NEEDS_DETAIL,
        "relationships": inquiry.RELATIONSHIPS, "id_proofs": inquiry.ID_PROOFS,
        "can_log": request.state.user.can("hq.list") if getattr(request.state, "user", None) else False,
    }, status_code=status_code)


@router.get("/desk/inquiry", response_class=HTMLResponse)
def inquiry_form(request: Request, user: CurrentUser = Depends(require("inquiry"))) -> HTMLResponse:
    return _form(request, {f: "" for f in TEXT_FIELDS})


@router.post("/desk/inquiry", response_class=HTMLResponse)
async def inquiry_submit(request: Request, user: CurrentUser = Depends(require("inquiry")),
                         session: Session = Depends(db)) -> Response:
    form = await request.form()
    values = {f: str(form.get(f) or "") for f in TEXT_FIELDS}
    req = inquiry.InquiryRequest(**values, give_up=bool(form.get("give_up")))
    return await run_in_threadpool(_answer, request, user, session, req, values)


def _answer(request: Request, user: CurrentUser, session: Session, req: inquiry.InquiryRequest,
            values: dict[str, str]) -> Response:
    errors = inquiry.check_request(req)
    if errors:
        return _form(request, values, errors=errors, status_code=422)
    try:
        result = inquiry.answer_inquiry(session, req, user=user, screen=screen(request))
        session.commit()
    except AnpiError as exc:
        session.rollback()
        fld = getattr(exc, "field", "") or "form"
        return _form(request, values, errors={fld: exc.message_ja}, status_code=422)
    if result.needs_detail or result.inquiry is None:
        return _form(request, values, needs_detail=True)
    return redirect(f"/desk/inquiry/{result.inquiry.id}")


@router.get("/desk/inquiry/log", response_class=HTMLResponse)
def inquiry_log(request: Request, outcome: str = "", user: CurrentUser = Depends(require("hq.list")),
                session: Session = Depends(db)) -> HTMLResponse:
    outcome = outcome if outcome in inquiry.OUTCOME_JA else ""
    rows = inquiry.list_inquiries(session, outcome=outcome)
    audit_view(session, request, user, subjects=[f"inquiry:{r.id}" for r in rows] +
               [f"evacuee:{r.evacuee_id}" for r in rows if r.evacuee_id],
               detail={"outcome": outcome, "count": len(rows)})
    session.commit()
    return render(request, "inquiry_log.html", {"rows": rows, "outcome": outcome, "outcomes": inquiry.OUTCOME_JA,
                                                "circled": inquiry.CIRCLED})


@router.get("/desk/inquiry/{inquiry_id}", response_class=HTMLResponse)
def inquiry_answer(request: Request, inquiry_id: str, user: CurrentUser = Depends(require("inquiry")),
                   session: Session = Depends(db)) -> HTMLResponse:
    inq = inquiry.get_inquiry(session, inquiry_id)
    # showing an answer again is a disclosure too; the audit log (admins only) may name the person
    audit_view(session, request, user, subjects=[f"inquiry:{inq.id}"] +
               ([f"evacuee:{inq.evacuee_id}"] if inq.evacuee_id else []))
    session.commit()
    ctx: dict[str, Any] = {
        "inq": inq, "items": [{**i, "circled": inquiry.CIRCLED[i["no"]]} for i in inq.items_disclosed],
        "head": inquiry.SCRIPT_ANSWERED_HEAD, "tail": inquiry.SCRIPT_ANSWERED_TAIL,
        "no_information": inquiry.SCRIPT_NO_INFORMATION,
    }
    return render(request, "inquiry_answer.html", ctx)
