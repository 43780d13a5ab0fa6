"""避難所 (admin): the municipality's shelter list — add a shelter or change its name, capacity and
population. Transfers (移動) pick their destination from this list."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import audit, shelter_list
from app.services.errors import AnpiError
from app.web.common import db, redirect, render, screen

router = APIRouter(dependencies=[CSRF], include_in_schema=False)


def _page(request: Request, session: Session, *, message: str = "", error: str = "", error_field: str = "",
          form: dict[str, str] | None = None, edit: str = "", status_code: int = 200) -> HTMLResponse:
    shelters = shelter_list.list_shelters(session, include_inactive=True)
    session.commit()  # this laptop's own row and what the hub told us are kept
    editing = next((s for s in shelters if s.code == edit), None)
    if editing is not None and not form:
        form = {"code": editing.code, "name": editing.name, "capacity": "" if editing.capacity is None else str(editing.capacity),
                "population": "" if editing.population is None else str(editing.population), "address": editing.address}
    return render(request, "admin_shelters.html", {
        "shelters": shelters, "message": message, "error": error, "error_field": error_field, "form": form or {},
        "editing": editing}, status_code=status_code)


@router.get("/admin/shelters", response_class=HTMLResponse)
def shelters_page(request: Request, done: str = "", edit: str = "", user: CurrentUser = Depends(require("admin")),
                  session: Session = Depends(db)) -> HTMLResponse:
    return _page(request, session, message=done, edit=edit)


@router.post("/admin/shelters", response_class=HTMLResponse)
def shelters_save(request: Request, code: str = Form(""), name: str = Form(""), capacity: str = Form(""),
                  population: str = Form(""), address: str = Form(""), editing: str = Form(""),
                  user: CurrentUser = Depends(require("admin")), session: Session = Depends(db)) -> Response:
    """Add (code not yet listed) or change (the 変更 form sends the code it edits)."""
    form = {"code": code, "name": name, "capacity": capacity, "population": population, "address": address}
    try:
        row = shelter_list.save(session, code=editing or code, name=name, capacity=capacity, population=population,
                                address=address, replace=bool(editing))
        audit.record(session, user, "shelter_save", screen(request), subjects=[f"shelter:{row.code}"],
                     detail={"name": row.name, "capacity": row.capacity, "population": row.population})
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _page(request, session, error=exc.message_ja, error_field=getattr(exc, "field", "") or "name",
                     form=form, edit=editing, status_code=422)
    return redirect(f"/admin/shelters?done={row.name} を{'変更' if editing else '追加'}しました")
