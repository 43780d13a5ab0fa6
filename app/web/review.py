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

DECISIONS_JA = {"confirmed": "確定しました", "rejected": "別人としました（ほかの候補は残ります）",
                "not_resident": "台帳にいない方としました", "merged": "統合しました（両方の記録と履歴は残ります）"}


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
                                           "weak": None, "merge": None, "care_labels": evacuees.care_labels})


def _item_page(request: Request, session: Session, user: CurrentUser, evacuee_id: str, *, error: str = "",
               weak: str = "", merge: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    """The same queue item again: with the reason a decision was refused, or the second step
    that picking a weak candidate needs."""
    try:
        item = evacuees.review_item(session, evacuee_id, reveal_restricted=user.can("restricted"))
    except AnpiError:
        item = None
    weak_cand = next((c for c in item.candidates if c.get("resident_id") == weak), None) if item and weak else None
    return render(request, "review.html", {"item": item, "error": error, "done": "", "weak": weak_cand, "merge": merge,
                                           "care_labels": evacuees.care_labels}, status_code=status_code)


@router.post("/review/{evacuee_id}", response_class=HTMLResponse)
def review_decide(request: Request, evacuee_id: str, decision: str = Form(...), resident_id: str = Form(""),
                  sure: str = Form(""), user: CurrentUser = Depends(require("review")),
                  session: Session = Depends(db)) -> Response:
    from app.services.reconcile import staff_decide

    if decision == "confirmed" and not sure and _is_weak(session, evacuee_id, resident_id):
        return _item_page(request, session, user, evacuee_id, weak=resident_id)
    try:
        d = staff_decide(session, evacuee_id, decision, resident_id or None, by=user.name)
        audit_view(session, request, user, "decide",
                   subjects=[f"evacuee:{evacuee_id}"] + ([f"resident:{resident_id}"] if resident_id else []),
                   detail={"decision": decision, "resident_id": d.resident_id})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _item_page(request, session, user, evacuee_id, error=exc.message_ja, status_code=422,
                          merge=_merge_offer(session, evacuee_id, resident_id) if decision == "confirmed" else None)
    return redirect(f"/review?done={decision}")


def _merge_offer(session: Session, evacuee_id: str, resident_id: str) -> dict[str, str] | None:
    """The other in-shelter record already linked to this resident, offered for 統合."""
    from app.services.reconcile import linked_elsewhere

    other = linked_elsewhere(session, {evacuee_id}).get(resident_id)
    if not other:
        return None
    ev = evacuees.get_evacuee(session, other)
    return {"keep_id": other, "name": evacuees.full_name(ev), "resident_id": resident_id}


@router.post("/review/{evacuee_id}/merge", response_class=HTMLResponse)
def review_merge(request: Request, evacuee_id: str, keep_id: str = Form(...), resident_id: str = Form(...),
                 user: CurrentUser = Depends(require("review")), session: Session = Depends(db)) -> Response:
    """統合: this (newer) record into the one already linked to the resident."""
    from app.services.merge import merge_into

    try:
        stay = merge_into(session, evacuee_id, keep_id, resident_id, by=user.name)
        audit_view(session, request, user, "merge", subjects=[f"evacuee:{evacuee_id}", f"evacuee:{keep_id}",
                                                               f"resident:{resident_id}"],
                   detail={"merged": evacuee_id, "into": keep_id, "stay_id": stay.id})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _item_page(request, session, user, evacuee_id, error=exc.message_ja, status_code=422)
    return redirect("/review?done=merged")


def _is_weak(session: Session, evacuee_id: str, resident_id: str) -> bool:
    """Whether the engine graded this candidate 可能性低い for this person (or never proposed it)."""
    d = evacuees.latest_decisions(session, [evacuee_id]).get(evacuee_id)
    for c in (d.candidates or []) if d else []:
        if c.get("resident_id") == resident_id:
            return evacuees.candidate_grade(float(c.get("probability") or 0), str(c.get("reasons", ""))) == "weak"
    return True
