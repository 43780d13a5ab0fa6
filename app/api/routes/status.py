"""`GET /api/status`: the dashboard numbers (no personal data, but only for logged-in staff)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import get_session
from app.services import evacuees
from app.services.status import shelter_status

router = APIRouter(prefix="/api", tags=["status"], dependencies=[CSRF])


@router.get("/status")
def status(request: Request, user: CurrentUser = Depends(require("dashboard")),
           session: Session = Depends(get_session)) -> dict[str, Any]:
    """`anpi status --json` plus today's arrivals/departures, the 要配慮者 count and the free disk space."""
    from app.services.disk import disk_space

    st = shelter_status(session)
    st["today"] = evacuees.day_counts(session)
    disk = disk_space(request.app.state.db_path, request.app.state.settings.disk_warn_mb)
    st["disk"] = disk.as_dict() if disk else None
    return st
