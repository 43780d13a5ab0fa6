"""本人記入の一覧 (staff): forms evacuees filled in at the kiosk, finished into intake at the desk.

Staff only (the "register" permission, like 受付) and audited: the entries are personal data that
nobody has checked yet. Opening an entry shows the intake form with every field prefilled and
the registry candidates looked up at once; registering it closes the entry (app/web/intake.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import self_registration
from app.services.errors import AnpiError
from app.web import intake
from app.web.common import audit_view, db, redirect, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)


@router.get("/intake/self-queue", response_class=HTMLResponse)
def queue_page(request: Request, gone: str = "", user: CurrentUser = Depends(require("register")),
               session: Session = Depends(db)) -> HTMLResponse:
    entries = [self_registration.summary(e) for e in self_registration.waiting(session)]
    audit_view(session, request, user, subjects=[f"self_entry:{e['id']}" for e in entries],
               detail={"waiting": len(entries)})
    session.commit()
    return render(request, "self_queue.html", {"entries": entries, "gone": gone})


@router.get("/intake/self-queue/{entry_id}", response_class=HTMLResponse)
def open_entry(request: Request, entry_id: str, user: CurrentUser = Depends(require("register")),
               session: Session = Depends(db)) -> Response:
    try:
        entry = self_registration.get_waiting(session, entry_id)
    except AnpiError:
        return redirect("/intake/self-queue?gone=1")
    audit_view(session, request, user, subjects=[f"self_entry:{entry.id}"], detail={"ticket": entry.ticket})
    session.commit()
    state = intake.form_state(entry.data)
    return intake.page(request, state, self_entry={"id": entry.id, "ticket": entry.ticket})


@router.post("/intake/self-queue/{entry_id}/discard", response_class=HTMLResponse)
def discard_entry(request: Request, entry_id: str, user: CurrentUser = Depends(require("register")),
                  session: Session = Depends(db)) -> Response:
    try:
        entry = self_registration.discard(session, entry_id, by=user.name)
    except AnpiError:
        session.rollback()
        return redirect("/intake/self-queue?gone=1")
    audit_view(session, request, user, "self_discard", subjects=[f"self_entry:{entry.id}"], detail={"ticket": entry.ticket})
    session.commit()
    return redirect("/intake/self-queue")
