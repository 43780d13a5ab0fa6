"""交代 (switch user): pick your name, type your PIN, work. Also the lock and the first-PIN screen."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api import auth
from app.api.auth import CSRF, browser_session, set_session_cookie
from app.services import accounts, audit
from app.services.errors import AnpiError, Conflict, Forbidden, InvalidInput, NotFound
from app.web.common import db, redirect, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)


def _safe_next(next_path: str) -> str:
    return next_path if next_path.startswith("/") and not next_path.startswith("//") and next_path != "/switch" else ""


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    s = browser_session(request)
    return redirect("/dashboard" if s and s.user_id else "/switch")


def _switch_page(request: Request, session: Session, *, selected: str = "", error: str = "", error_field: str = "",
                 set_pin_for: str = "", next_path: str = "", status_code: int = 200) -> Response:
    s = browser_session(request)
    new_cookie = None
    if s is None:
        s = request.app.state.sessions.new()
        new_cookie = s
    users = accounts.list_users(session, include_disabled=False)
    current = s.user_id or s.locked_user_id or ""
    resp = render(request, "switch.html", {
        "users": users, "selected": selected or current, "error": error, "error_field": error_field,
        "set_pin_user": next((u for u in users if u.id == set_pin_for), None),
        "next": _safe_next(next_path), "locked": bool(s.locked_user_id and not s.user_id),
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


@router.post("/switch", response_class=HTMLResponse)
def switch_submit(request: Request, user_id: str = Form(""), pin: str = Form(""), next: str = Form(""),  # noqa: A002
                  session: Session = Depends(db)) -> Response:
    if not user_id:
        return _switch_page(request, session, error="名前を選んでください", error_field="user_id", next_path=next,
                            status_code=422)
    try:
        user = accounts.get_user(session, user_id)
    except NotFound:
        return _switch_page(request, session, error="利用者が見つかりません", error_field="user_id", next_path=next,
                            status_code=422)
    if user.disabled:
        return _switch_page(request, session, error="このアカウントは無効です", error_field="user_id", next_path=next,
                            status_code=403)
    if not user.pin_hash:
        return _switch_page(request, session, selected=user.id, set_pin_for=user.id, next_path=next)
    try:
        ok = accounts.verify_pin(session, user, pin)
    except Forbidden as exc:
        session.commit()
        return _switch_page(request, session, selected=user.id, error=exc.message_ja, error_field="pin",
                            next_path=next, status_code=403)
    if not ok:
        audit.record(session, user, "login_failed", "POST /switch", detail={"failed_attempts": user.failed_attempts})
        session.commit()
        left = accounts.MAX_FAILURES - user.failed_attempts
        msg = ("暗証番号が違います" + (f"（あと{left}回間違えると5分間ロックされます）" if user.failed_attempts else
                                  "。5回間違えたため5分間ロックされました"))
        return _switch_page(request, session, selected=user.id, error=msg, error_field="pin", next_path=next,
                            status_code=401)
    audit.record(session, user, "login", "POST /switch")
    session.commit()
    return _login(request, session, user.id, next)


@router.post("/switch/pin", response_class=HTMLResponse)
def set_first_pin(request: Request, user_id: str = Form(""), pin: str = Form(""), pin2: str = Form(""),
                  next: str = Form(""), session: Session = Depends(db)) -> Response:  # noqa: A002
    try:
        user = accounts.get_user(session, user_id)
        if user.disabled:
            raise Forbidden("account disabled", "このアカウントは無効です")
        if pin != pin2:
            raise InvalidInput("PINs differ", "確認用の暗証番号が一致しません", "pin2")
        accounts.set_pin(session, user, pin)
    except (InvalidInput, Conflict, Forbidden, NotFound) as exc:
        session.rollback()
        field = getattr(exc, "field", "") or "pin"
        return _switch_page(request, session, selected=user_id, set_pin_for=user_id, error=exc.message_ja,
                            error_field=field, next_path=next, status_code=422)
    audit.record(session, user, "pin_set", "POST /switch/pin")
    audit.record(session, user, "login", "POST /switch/pin")
    session.commit()
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
