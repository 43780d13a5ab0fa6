"""Who is at the keyboard: browser sessions, PIN switching, auto-lock, roles and CSRF.

How it works
- A browser gets a random session token in an HttpOnly, SameSite=Strict cookie the first time it
  opens any page. The session lives in memory on the server (`SessionStore`): the token, a CSRF
  token, the staff member currently logged in (or none), and the time of their last activity.
  A restart of `anpi serve` logs everybody out, which costs each person one PIN.
- 交代 (switch): choosing a name and typing the PIN replaces the user of this browser session and
  rotates both tokens (no session fixation). The previous user's drafts stay with them.
- Auto-lock: a session idle for `auto_lock_seconds` loses its user at the next request (the page's
  script locks the screen at the same moment); requests marked `X-Anpi-Poll: 1` (progress bars)
  do not count as activity.
- Drafts: half-filled forms are kept server-side per user (`SessionStore.drafts`), never in the
  browser, so the next person at the laptop cannot see them.
- CSRF: every POST/PUT/PATCH/DELETE must carry the session's CSRF token, in the form field
  `csrf_token` or the header `X-CSRF-Token`; requests with a foreign Origin are refused too.
- Roles: `PERMISSIONS` maps each permission to the roles that hold it; routes declare the
  permission they need and the server enforces it on every request.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from sqlmodel import Session

from app.models import Staff

COOKIE = "anpi_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
POLL_HEADER = "x-anpi-poll"
SESSION_MAX_AGE = 12 * 3600  # a browser session unused this long is forgotten
DRAFT_MAX_AGE = 12 * 3600

ROLES = ("staff", "desk", "hq", "admin")
ROLE_JA = {"staff": "受付", "desk": "窓口", "hq": "本部", "admin": "管理者"}

#: permission → roles. staff ⊂ hq ⊂ admin for the shelter's own work; desk reads and searches.
PERMISSIONS: dict[str, frozenset[str]] = {
    "dashboard": frozenset(ROLES),
    "roster.view": frozenset(ROLES),  # roster list, person detail
    "search": frozenset(ROLES),  # registry candidates for the person at the desk
    "register": frozenset({"staff", "hq", "admin"}),  # intake, check-in/out, transfer, edits
    "review": frozenset({"staff", "hq", "admin"}),  # 照合確認
    "roster.import": frozenset({"staff", "hq", "admin"}),
    "roster.print": frozenset({"staff", "hq", "admin"}),
    "export": frozenset({"hq", "admin"}),
    "restricted": frozenset({"hq", "admin"}),  # see 閲覧制限 residents' address
    "admin": frozenset({"admin"}),  # users, registry import, audit log, backups
    "hq.list": frozenset({"hq", "admin"}),  # 安否確認 list of every resident, counts per 町字
    "hq.confirm": frozenset({"hq", "admin"}),  # record 他の手段で確認 / 死亡・行方不明
    "inquiry": frozenset({"desk", "hq", "admin"}),  # 安否照会 desk
    "certificate": frozenset({"desk", "hq", "admin"}),  # り災証明書 / 被災証明書
    "sought": frozenset({"desk", "hq", "admin"}),  # PFIF imports and their links
}


def can(role: str | None, perm: str) -> bool:
    return bool(role) and role in PERMISSIONS[perm]


@dataclass(frozen=True)
class CurrentUser:
    """The logged-in staff member, detached from any database session."""

    id: str
    name: str
    role: str

    @property
    def role_ja(self) -> str:
        return ROLE_JA.get(self.role, self.role)

    def can(self, perm: str) -> bool:
        return can(self.role, perm)


@dataclass
class BrowserSession:
    token: str
    csrf: str
    user_id: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    created: float = field(default_factory=time.monotonic)
    locked_user_id: str | None = None  # who was locked out, so their page comes back after the PIN
    kiosk: bool = False  # a 本人記入 kiosk session (/self): never holds a user, never reaches a staff page


class SessionStore:
    """In-memory browser sessions and per-user drafts (personal data never written to disk here)."""

    def __init__(self, auto_lock_seconds: int) -> None:
        self.auto_lock_seconds = auto_lock_seconds
        self._lock = threading.Lock()
        self._sessions: dict[str, BrowserSession] = {}
        self._drafts: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def new(self, *, kiosk: bool = False) -> BrowserSession:
        s = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), kiosk=kiosk)
        with self._lock:
            self._purge()
            self._sessions[s.token] = s
        return s

    def get(self, token: str | None) -> BrowserSession | None:
        if not token:
            return None
        with self._lock:
            return self._sessions.get(token)

    def login(self, old: BrowserSession | None, user_id: str) -> BrowserSession:
        """A fresh session (new tokens) for `user_id`; the old token stops working."""
        s = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user_id=user_id)
        with self._lock:
            if old is not None:
                self._sessions.pop(old.token, None)
            self._sessions[s.token] = s
        return s

    def forget(self, s: BrowserSession) -> None:
        """End a session at once (a kiosk session after inactivity): its token stops working."""
        with self._lock:
            self._sessions.pop(s.token, None)

    def lock(self, s: BrowserSession) -> None:
        with self._lock:
            if s.user_id:
                s.locked_user_id = s.user_id
            s.user_id = None

    def idle(self, s: BrowserSession, now: float | None = None) -> bool:
        return (now or time.monotonic()) - s.last_seen > self.auto_lock_seconds

    def _purge(self) -> None:
        now = time.monotonic()
        for tok in [t for t, s in self._sessions.items() if now - s.last_seen > SESSION_MAX_AGE]:
            del self._sessions[tok]
        for key in [k for k, (ts, _) in self._drafts.items() if now - ts > DRAFT_MAX_AGE]:
            del self._drafts[key]

    # drafts: one per (user, form)
    def save_draft(self, user_id: str, form: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._drafts[(user_id, form)] = (time.monotonic(), data)

    def get_draft(self, user_id: str, form: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._drafts.get((user_id, form))
        return hit[1] if hit else None

    def drop_draft(self, user_id: str, form: str) -> None:
        with self._lock:
            self._drafts.pop((user_id, form), None)


class AuthError(Exception):
    """401 (nobody logged in, or locked) or 403 (wrong role, bad CSRF token)."""

    def __init__(self, status: int, message: str, message_ja: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message_ja = message_ja
        self.reason = reason
        #: the "error" token of the one JSON shape (sync.http_errors)
        self.code = reason or ("unauthenticated" if status == 401 else "forbidden")


def store(request: Request) -> SessionStore:
    return request.app.state.sessions


def browser_session(request: Request) -> BrowserSession | None:
    return store(request).get(request.cookies.get(COOKIE))


def set_session_cookie(response: Any, s: BrowserSession) -> None:
    response.set_cookie(COOKIE, s.token, httponly=True, samesite="strict", path="/", max_age=SESSION_MAX_AGE)


def _load_user(request: Request, user_id: str) -> CurrentUser | None:
    # every request asks this: it reads on the query-only pool, so it never waits for a write
    engine = getattr(request.app.state, "read_engine", None) or request.app.state.engine
    with Session(engine) as db:
        u = db.get(Staff, user_id)
        if u is None or u.disabled:
            return None
        return CurrentUser(u.id, u.name, u.role)


def resolve_user(request: Request) -> CurrentUser:
    """The logged-in user of this request, or AuthError(401). Counts as activity unless polling."""
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    st = store(request)
    s = browser_session(request)
    if s is None or not s.user_id or s.kiosk:
        raise AuthError(401, "login required", "交代画面で名前を選び、暗証番号を入力してください", "login")
    if st.idle(s):
        user_id = s.user_id
        st.lock(s)
        _audit_lock(request, user_id, "idle")
        raise AuthError(401, "locked after inactivity", "一定時間操作がなかったためロックしました", "locked")
    user = _load_user(request, s.user_id)
    if user is None:
        st.lock(s)
        raise AuthError(401, "account disabled", "このアカウントは無効です", "disabled")
    if request.headers.get(POLL_HEADER) != "1":
        s.last_seen = time.monotonic()
    request.state.user = user
    request.state.browser_session = s
    return user


def _audit_lock(request: Request, user_id: str | None, reason: str) -> None:
    from app.services import audit

    with Session(request.app.state.engine) as db:
        u = db.get(Staff, user_id) if user_id else None
        audit.record(db, u, "lock", f"{request.method} {request.url.path}", detail={"reason": reason})
        db.commit()


def require(perm: str):  # type: ignore[no-untyped-def]
    """Dependency: the current user, who must hold `perm` (401 when nobody, 403 when the role lacks it)."""

    def dep(request: Request) -> CurrentUser:
        user = resolve_user(request)
        if not user.can(perm):
            raise AuthError(403, f"role {user.role} may not use this ({perm})",
                            f"この操作は{user.role_ja}の権限ではできません", "role")
        return user

    dep.__name__ = f"require_{perm.replace('.', '_')}"
    dep.permission = perm  # type: ignore[attr-defined]
    return dep


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def csrf_protect(request: Request) -> None:
    """Dependency on every router: unsafe methods need this session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    s = browser_session(request)
    token = request.headers.get(CSRF_HEADER, "")
    if not token:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else ""
    if s is None or not token or not secrets.compare_digest(token, s.csrf) or not _same_origin(request):
        raise AuthError(403, "missing or wrong CSRF token", "画面の有効期限が切れました。もう一度操作してください", "csrf")


CSRF = Depends(csrf_protect)


def login_url(next_path: str = "") -> str:
    return "/switch" + (f"?next={quote(next_path, safe='/')}" if next_path and next_path.startswith("/") else "")
