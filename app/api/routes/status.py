"""`GET /api/status`: the dashboard numbers (no personal data, but only for logged-in staff)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import get_session
from app.services import evacuees
from app.services.status import shelter_status

router = APIRouter(prefix="/api", tags=["status"], dependencies=[CSRF])


@router.get("/status")
def status(user: CurrentUser = Depends(require("dashboard")), session: Session = Depends(get_session)) -> dict[str, Any]:
    """`anpi status --json` plus today's arrivals/departures and the 要配慮者 count."""
    st = shelter_status(session)
    st["today"] = evacuees.day_counts(session)
    return st
