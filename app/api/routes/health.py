"""`GET /healthz`: public, no personal data; load balancers and the binary test poll it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from app import __version__

router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz(request: Request) -> dict[str, str]:
    from app.api.deps import read_engine

    with read_engine(request).connect() as conn:  # answers while a long write holds the lock
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
