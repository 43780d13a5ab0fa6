"""`/api/session`: log in with a PIN, lock, keep-alive and per-user drafts for JSON clients and the UI script."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session

from app.api import pin_login
from app.api.auth import CSRF, AuthError, CurrentUser, browser_session, require, resolve_user, set_session_cookie
from app.api.deps import get_session
from app.models import Staff
from app.services import accounts, audit
from app.services.errors import Forbidden, InvalidInput

router = APIRouter(prefix="/api/session", tags=["session"], dependencies=[CSRF])

DRAFT_FORMS = ("intake",)


class Login(BaseModel):
    user: str  # name or id
    pin: str = ""
    new_pin: Optional[str] = None  # first use: the PIN the person chooses…
    setup_code: str = ""  # …with the one-time setup code their admin gave them


def _me(user: CurrentUser | None) -> dict[str, Any] | None:
    return {"id": user.id, "name": user.name, "role": user.role} if user else None


@router.get("")
def session_info(request: Request) -> JSONResponse:
    """Who is logged in on this browser session (null if nobody), and the CSRF token for unsafe requests."""
    s = browser_session(request)
    new = None
    if s is None:
        s = new = request.app.state.sessions.new()
    user = None
    if s.user_id:
        try:
            user = resolve_user(request)
        except AuthError:
            user = None
    resp = JSONResponse({"user": _me(user), "csrf_token": s.csrf,
                         "auto_lock_seconds": request.app.state.sessions.auto_lock_seconds})
    if new is not None:
        set_session_cookie(resp, new)
    return resp


@router.post("")
def login(body: Login, request: Request, session: Session = Depends(get_session)) -> JSONResponse:
    """Log in (or switch user) with name/id and PIN; rotates the session and CSRF tokens."""
    user = accounts.get_user(session, body.user)
    if user.disabled:
        raise Forbidden("account disabled", "このアカウントは無効です")
    if body.new_pin is not None:
        outcome = pin_login.claim(request, session, user, body.setup_code, body.new_pin, "POST /api/session")
    else:
        outcome = pin_login.check_pin(request, session, user, body.pin, "POST /api/session")
    if not outcome.ok:
        raise AuthError(outcome.status, outcome.message, outcome.message_ja, outcome.reason)
    new = request.app.state.sessions.login(browser_session(request), user.id)
    resp = JSONResponse({"user": {"id": user.id, "name": user.name, "role": user.role}, "csrf_token": new.csrf})
    set_session_cookie(resp, new)
    return resp


@router.post("/lock")
def lock(request: Request, session: Session = Depends(get_session)) -> dict[str, bool]:
    """Lock this browser session (the 交代 screen comes next); drafts stay with their user."""
    s = browser_session(request)
    if s is not None and s.user_id:
        u = session.get(Staff, s.user_id)
        audit.record(session, u, "lock", "POST /api/session/lock", detail={"reason": "manual"})
        session.commit()
        request.app.state.sessions.lock(s)
    return {"locked": True}


@router.get("/ping")
def ping(user: CurrentUser = Depends(require("dashboard"))) -> dict[str, bool]:
    """Keep-alive the page script sends while the person is typing (activity without a request)."""
    return {"ok": True}


@router.get("/drafts/{form}")
def get_draft(form: str, request: Request, user: CurrentUser = Depends(require("dashboard"))) -> dict[str, Any]:
    """This user's saved half-filled form; never another user's."""
    if form not in DRAFT_FORMS:
        raise InvalidInput(f"unknown form {form!r}", "フォーム名が正しくありません", "form")
    return {"form": form, "data": request.app.state.sessions.get_draft(user.id, form)}


@router.put("/drafts/{form}")
def put_draft(form: str, data: dict[str, Any], request: Request,
              user: CurrentUser = Depends(require("dashboard"))) -> dict[str, bool]:
    if form not in DRAFT_FORMS:
        raise InvalidInput(f"unknown form {form!r}", "フォーム名が正しくありません", "form")
    clean = {str(k)[:100]: (str(v)[:2000] if v is not None else "") for k, v in list(data.items())[:1000]}
    request.app.state.sessions.save_draft(user.id, form, clean)
    return {"saved": True}


@router.delete("/drafts/{form}")
def delete_draft(form: str, request: Request, user: CurrentUser = Depends(require("dashboard"))) -> dict[str, bool]:
    request.app.state.sessions.drop_draft(user.id, form)
    return {"deleted": True}
