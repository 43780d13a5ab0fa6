"""What every HTML view shares: the Jinja2 environment, the page context and the navigation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

import kiosk_ui
from app.api.auth import CSRF_FIELD, ROLE_JA, CurrentUser, browser_session, can
from app.services import audit
from app.services.reasons_ja import reasons_text

UI_DIR = Path(kiosk_ui.__file__).parent
TEMPLATES_DIR = UI_DIR / "templates"
STATIC_DIR = UI_DIR / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

#: navigation: (path, label, permission, access key). Only what exists, only what the role may use.
NAV = [
    ("/dashboard", "ダッシュボード", "dashboard", "d"),
    ("/intake", "受付", "register", "u"),
    ("/intake/self-queue", "本人記入", "register", ""),
    ("/desk/scan", "カード読取", "register", "s"),
    ("/review", "照合確認", "review", "k"),
    ("/roster", "名簿", "roster.view", "m"),
    ("/roster/import", "名簿ファイル取込", "roster.import", "f"),
    ("/hq", "安否確認", "hq.list", "h"),
    ("/desk/inquiry", "安否照会", "inquiry", "q"),
    ("/desk/certificates", "証明書", "certificate", "c"),
    ("/desk/sought", "捜索依頼", "sought", ""),
    ("/admin/users", "利用者", "admin", ""),
    ("/admin/registry", "台帳取込", "admin", ""),
    ("/admin/shelters", "避難所", "admin", ""),
    ("/admin/devices", "端末", "admin", ""),
    ("/admin/audit", "監査ログ", "admin", ""),
]


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Stored times are naive UTC; staff read the laptop's local time."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone().strftime(fmt)


def iso_date(value: date | None) -> str:
    return value.isoformat() if value else ""


def upload_name(filename: str | None, default: str) -> str:
    """An uploaded file's own name, safe to create in a temp folder: no folders (also Windows
    `C:\\…\\x.csv`), never "" "." "..", and short enough for the file system (an upload named
    ".." or 300 characters long answered 500; found by tests/fuzz/test_api_schemathesis.py)."""
    name = Path((filename or "").replace("\\", "/")).name.replace("\x00", "")
    if name in ("", ".", ".."):
        return default
    suffix = Path(name).suffix[:16]  # the suffix picks the reader (.csv / .xlsx): keep it
    stem = name[: len(name) - len(suffix)] if suffix else name
    while len((stem + suffix).encode("utf-8")) > 200:
        stem = stem[:-1]
    return (stem + suffix) if stem else default


templates.env.filters["local_time"] = local_time
templates.env.filters["iso_date"] = iso_date
templates.env.filters["reasons_ja"] = reasons_text
templates.env.globals["ROLE_JA"] = ROLE_JA
templates.env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}


def nav_for(user: CurrentUser | None) -> list[tuple[str, str, str]]:
    if user is None:
        return []
    return [(path, label, key) for path, label, perm, key in NAV if can(user.role, perm)]


def render(request: Request, template: str, ctx: dict[str, Any] | None = None, *, status_code: int = 200,
           user: CurrentUser | None = None) -> HTMLResponse:
    s = browser_session(request)
    user = user or getattr(request.state, "user", None)
    context = {
        "request": request,
        "user": user,
        "nav": nav_for(user),
        "csrf_token": s.csrf if s else "",
        "csrf_field": CSRF_FIELD,
        "auto_lock_seconds": request.app.state.sessions.auto_lock_seconds,
        "path": request.url.path,
        "can": (lambda perm: bool(user) and user.can(perm)),
        **(ctx or {}),
    }
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def db(request: Request) -> Iterator[Session]:
    """The page's session: query-only reads for a GET (see app.api.deps.request_session)."""
    from app.api.deps import request_session

    with request_session(request) as s:
        yield s


def screen(request: Request) -> str:
    """The screen name stored in the audit log: method and route template (not the filled-in URL)."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def audit_view(session: Session, request: Request, user: CurrentUser, action: str = "view",
               subjects: list[str] | None = None, detail: dict[str, Any] | None = None) -> None:
    audit.record(session, user, action, screen(request), subjects or [], detail)
