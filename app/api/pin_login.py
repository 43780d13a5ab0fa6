"""One way to check a PIN or a setup code for the 交代 screen and `/api/session`: throttled per
client and per (client, account), audited, and answering alike whether or not the account has a PIN.

See `app.services.login_throttle` for why the account itself is never locked for everybody.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlmodel import Session

from app.models import Staff
from app.services import accounts, audit
from app.services.login_throttle import LoginThrottle


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int = 200  # 401 wrong, 429 throttled
    message: str = ""
    message_ja: str = ""
    reason: str = ""  # "pin" | "setup_code" | "throttled"


def throttle_of(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


def client_of(request: Request) -> str:
    """The client's address as the server sees it (the shelter serves its LAN directly, no proxy)."""
    return request.client.host if request.client else "unknown"


def _refused(request: Request, session: Session, user: Staff, screen: str) -> Outcome | None:
    r = throttle_of(request).refusal(client_of(request), user.id)
    if r is None:
        return None
    audit.record(session, user, "login_refused", screen, detail={"client": client_of(request), "scope": r.scope})
    session.commit()
    return Outcome(False, 429, r.message, r.message_ja, "throttled")


def _wrong(request: Request, session: Session, user: Staff, screen: str, what: str) -> Outcome:
    th = throttle_of(request)
    left = th.failed(client_of(request), user.id)
    audit.record(session, user, "login_failed", screen, detail={"client": client_of(request), "left": left})
    session.commit()
    mins = max(1, int(th.lockout_seconds // 60))
    noun = "暗証番号" if what == "pin" else "初期設定コード"
    tail = (f"（あと{left}回間違えると、この端末からは{mins}分間ロックされます）" if left
            else f"。{th.max_failures}回間違えたため、この端末からは{mins}分間ロックされました")
    return Outcome(False, 401, f"wrong {what.replace('_', ' ')}", f"{noun}が違います" + tail, what)


def check_pin(request: Request, session: Session, user: Staff, pin: str, screen: str) -> Outcome:
    """Log-in check; an account without a PIN answers exactly like a wrong PIN (and takes as long)."""
    refused = _refused(request, session, user, screen)
    if refused:
        return refused
    if not accounts.verify_pin(session, user, pin):
        return _wrong(request, session, user, screen, "pin")
    throttle_of(request).succeeded(client_of(request), user.id)
    audit.record(session, user, "login", screen)
    session.commit()
    return Outcome(True)


def claim(request: Request, session: Session, user: Staff, setup_code: str, pin: str, screen: str) -> Outcome:
    """First PIN with the admin's one-time setup code (raises InvalidInput for a malformed PIN)."""
    refused = _refused(request, session, user, screen)
    if refused:
        return refused
    if not accounts.set_pin(session, user, setup_code, pin):
        session.rollback()
        return _wrong(request, session, user, screen, "setup_code")
    throttle_of(request).succeeded(client_of(request), user.id)
    audit.record(session, user, "pin_set", screen)
    audit.record(session, user, "login", screen)
    session.commit()
    return Outcome(True)
