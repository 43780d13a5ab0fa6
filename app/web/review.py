"""照合確認 (review queue): one evacuee beside the registry's top candidates; decide, next."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import evacuees
from app.services.errors import AnpiError
from app.web.common import audit_view, db, redirect, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

DECISIONS_JA = {"confirmed": "確定しました", "rejected": "候補を否定しました", "not_resident": "住民ではないとしました"}


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, evacuee: str = "", after: str = "", done: str = "",
                user: CurrentUser = Depends(require("review")), session: Session = Depends(db)) -> HTMLResponse:
    queue = evacuees.review_queue(session)
    target = evacuee
    if not target and after:
        ids = [e.id for e in queue]
        if after in ids:
            i = ids.index(after)
            target = ids[(i + 1) % len(ids)]
    item = None
    error = ""
    try:
        item = evacuees.review_item(session, target or None, reveal_restricted=user.can("restricted"))
    except AnpiError as exc:
        error = exc.message_ja
        item = evacuees.review_item(session, None, reveal_restricted=user.can("restricted"))
    if item is not None:
        audit_view(session, request, user, subjects=[f"evacuee:{item.evacuee.id}"] +
                   [f"resident:{c.get('resident_id')}" for c in item.candidates])
        session.commit()
    return render(request, "review.html", {"item": item, "error": error, "done": DECISIONS_JA.get(done, ""),
                                           "care_labels": evacuees.care_labels})


@router.post("/review/{evacuee_id}", response_class=HTMLResponse)
def review_decide(request: Request, evacuee_id: str, decision: str = Form(...), resident_id: str = Form(""),
                  user: CurrentUser = Depends(require("review")), session: Session = Depends(db)) -> Response:
    from app.services.reconcile import staff_decide

    try:
        d = staff_decide(session, evacuee_id, decision, resident_id or None, by=user.name)
        audit_view(session, request, user, "decide",
                   subjects=[f"evacuee:{evacuee_id}"] + ([f"resident:{resident_id}"] if resident_id else []),
                   detail={"decision": decision, "resident_id": d.resident_id})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return render(request, "review.html", {"item": None, "error": exc.message_ja, "done": "",
                                               "care_labels": evacuees.care_labels}, status_code=422)
    return redirect(f"/review?done={decision}")
