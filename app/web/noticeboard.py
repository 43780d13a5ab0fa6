"""掲示用名簿 downloads (PDF for the wall, CSV for the town's website): a thin face over
app.services.noticeboard, which decides who may be on it (⑭ consent, never 閲覧制限)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import noticeboard
from app.web.common import db, screen

router = APIRouter(dependencies=[CSRF], include_in_schema=False)


@router.get("/noticeboard")
def noticeboard_file(request: Request, format: str = "pdf", paper: str = "a4",
                     user: CurrentUser = Depends(require("roster.print")), session: Session = Depends(db)) -> Response:
    fmt = format.strip().lower()
    nb, data = noticeboard.export(session, fmt=fmt, paper=paper.strip().lower(), by=user, screen=screen(request))
    session.commit()
    media = "application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8"
    name = f"noticeboard.{fmt}"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
