"""交代 (switch user): pick your name, type your PIN, work. Also the lock and the first-PIN screen."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api import auth, pin_login
from app.api.auth import CSRF, browser_session, set_session_cookie
from app.models import Staff
from app.services import accounts, audit
from app.services.errors import AnpiError, InvalidInput, NotFound
from app.web.common import db, redirect, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)


def _safe_next(next_path: str) -> str:
    return next_path if next_path.startswith("/") and not next_path.startswith("//") and next_path != "/switch" else ""


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    s = browser_session(request)
    return redirect("/dashboard" if s and s.user_id else "/switch")


def _switch_page(request: Request, session: Session, *, selected: str = "", error: str = "", error_field: str = "",
                 setup: bool = False, next_path: str = "", status_code: int = 200) -> Response:
    """The 交代 screen (or, with `setup`, the first-use form). Identical for accounts with and
    without a PIN: nothing on it tells which accounts could still be set up."""
    s = browser_session(request)
    new_cookie = None
    if s is None:
        s = request.app.state.sessions.new()
        new_cookie = s
    users = accounts.list_users(session, include_disabled=False)
    current = s.user_id or s.locked_user_id or ""
    resp = render(request, "switch.html", {
        "users": users, "selected": selected or current, "error": error, "error_field": error_field,
        "setup": setup, "next": _safe_next(next_path), "locked": bool(s.locked_user_id and not s.user_id),
        "csrf_token": s.csrf,
    }, status_code=status_code, user=None)
    if new_cookie is not None:
        set_session_cookie(resp, new_cookie)
    return resp


@router.get("/switch", response_class=HTMLResponse)
def switch_page(request: Request, next: str = "", session: Session = Depends(db)) -> Response:  # noqa: A002
    return _switch_page(request, session, next_path=next)


def _login(request: Request, session: Session, user_id: str, next_path: str) -> Response:
    st = request.app.state.sessions
    old = browser_session(request)
    returning = old is not None and user_id in (old.user_id, old.locked_user_id)
    new = st.login(old, user_id)
    target = _safe_next(next_path) if returning else ""
    resp = redirect(target or "/dashboard")
    set_session_cookie(resp, new)
    return resp


def _user_or_page(request: Request, session: Session, user_id: str, next_path: str, setup: bool) -> Staff | Response:
    """The chosen account, or the page answering why not (no name, unknown, disabled)."""
    if not user_id:
        return _switch_page(request, session, error="名前を選んでください", error_field="user_id", setup=setup,
                            next_path=next_path, status_code=422)
    try:
        user = accounts.get_user(session, user_id)
    except NotFound:
        return _switch_page(request, session, error="利用者が見つかりません", error_field="user_id", setup=setup,
                            next_path=next_path, status_code=422)
    if user.disabled:
        return _switch_page(request, session, error="このアカウントは無効です", error_field="user_id", setup=setup,
                            next_path=next_path, status_code=403)
    return user


@router.post("/switch", response_class=HTMLResponse)
def switch_submit(request: Request, user_id: str = Form(""), pin: str = Form(""), next: str = Form(""),  # noqa: A002
                  session: Session = Depends(db)) -> Response:
    user = _user_or_page(request, session, user_id, next, setup=False)
    if not isinstance(user, Staff):
        return user
    outcome = pin_login.check_pin(request, session, user, pin, "POST /switch")
    if not outcome.ok:
        return _switch_page(request, session, selected=user.id, error=outcome.message_ja, error_field="pin",
                            next_path=next, status_code=outcome.status)
    return _login(request, session, user.id, next)


@router.get("/switch/setup", response_class=HTMLResponse)
def setup_page(request: Request, next: str = "", session: Session = Depends(db)) -> Response:  # noqa: A002
    """First use: name, the one-time setup code from the admin, and the PIN the person chooses."""
    return _switch_page(request, session, setup=True, next_path=next)


@router.post("/switch/pin", response_class=HTMLResponse)
def set_first_pin(request: Request, user_id: str = Form(""), setup_code: str = Form(""), pin: str = Form(""),
                  pin2: str = Form(""), next: str = Form(""), session: Session = Depends(db)) -> Response:  # noqa: A002
    user = _user_or_page(request, session, user_id, next, setup=True)
    if not isinstance(user, Staff):
        return user
    try:
        if pin != pin2:
            raise InvalidInput("PINs differ", "確認用の暗証番号が一致しません", "pin2")
        outcome = pin_login.claim(request, session, user, setup_code, pin, "POST /switch/pin")
    except InvalidInput as exc:
        session.rollback()
        return _switch_page(request, session, selected=user.id, setup=True, error=exc.message_ja,
                            error_field=exc.field or "pin", next_path=next, status_code=422)
    if not outcome.ok:
        return _switch_page(request, session, selected=user.id, setup=True, error=outcome.message_ja,
                            error_field="setup_code", next_path=next, status_code=outcome.status)
    return _login(request, session, user.id, next)


@router.post("/lock", response_class=HTMLResponse)
def lock(request: Request, next: str = Form(""), reason: str = Form("manual"),  # noqa: A002
         session: Session = Depends(db)) -> Response:
    """交代 / ロック button and the page's idle timer: the user is locked out, the browser session stays."""
    s = browser_session(request)
    if s is not None and s.user_id:
        try:
            user = accounts.get_user(session, s.user_id)
            audit.record(session, user, "lock", "POST /lock", detail={"reason": reason if reason in ("manual", "idle") else "manual"})
            session.commit()
        except AnpiError:
            session.rollback()
        request.app.state.sessions.lock(s)
    return redirect(auth.login_url(_safe_next(next)))
