"""ダッシュボード: the numbers a shelter lead asks for first."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import evacuees, journal
from app.services.status import shelter_status
from app.web.common import db, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)


def dashboard_numbers(session: Session) -> dict:
    st = shelter_status(session)
    st.update(evacuees.day_counts(session))
    st["sync_warnings"] = journal.sync_warnings(session)
    return st


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, user: CurrentUser = Depends(require("dashboard")),
              session: Session = Depends(db)) -> HTMLResponse:
    from app.services.backup import backup_overview
    from app.services.disk import disk_space

    settings = request.app.state.settings
    backups = backup_overview(session, folder=settings.backup_dir, interval_minutes=settings.backup_interval_minutes)
    disk = disk_space(request.app.state.db_path, settings.disk_warn_mb)
    return render(request, "dashboard.html", {"st": dashboard_numbers(session), "backups": backups, "disk": disk,
                                              "backup_flash": request.query_params.get("backup", "")})
