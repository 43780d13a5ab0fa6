"""Staff accounts: one per person, PIN-protected, quick to switch.

Why PINs and not passwords: the 2011 leak came from a shared login kept because logging in
again took minutes. A 4–6 digit PIN with argon2 and a lockout after five wrong tries is quick
enough that nobody shares, and slow enough to guess that nobody gets in by trying.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from app.ids import utcnow
from app.models import Staff
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

ROLES = ("staff", "desk", "hq", "admin")
PIN_RE = re.compile(r"^[0-9]{4,6}$")
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=5)

# Moderate argon2 cost: verifying must stay well under the 3-second switch target on an old laptop.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def check_pin_format(pin: str) -> None:
    if not PIN_RE.match(pin or ""):
        raise InvalidInput("PIN must be 4 to 6 digits", "暗証番号は4〜6桁の数字です", "pin")


def add_user(session: Session, name: str, role: str, pin: str | None = None) -> Staff:
    name = name.strip()
    if not name:
        raise InvalidInput("name is empty", "名前を入力してください", "name")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", "役割が正しくありません", "role")
    if session.exec(select(Staff).where(Staff.name == name)).first():
        raise Conflict(f"user {name!r} already exists", f"{name} さんは登録済みです")
    if pin is not None:
        check_pin_format(pin)
    user = Staff(name=name, role=role, pin_hash=_hasher.hash(pin) if pin else None)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, name_or_id: str) -> Staff:
    user = session.get(Staff, name_or_id) or session.exec(select(Staff).where(Staff.name == name_or_id)).first()
    if user is None:
        raise NotFound(f"no user {name_or_id!r}", "利用者が見つかりません")
    return user


def list_users(session: Session, include_disabled: bool = True) -> list[Staff]:
    q = select(Staff).order_by(Staff.name)
    if not include_disabled:
        q = q.where(Staff.disabled == False)  # noqa: E712
    return list(session.exec(q))


def disable_user(session: Session, name: str) -> Staff:
    user = get_user(session, name)
    user.disabled = True
    session.add(user)
    return user


def set_pin(session: Session, user: Staff, pin: str) -> None:
    """First use: the person chooses their own PIN (only allowed while none is set)."""
    check_pin_format(pin)
    if user.pin_hash:
        raise Conflict("PIN already set", "暗証番号は設定済みです")
    user.pin_hash = _hasher.hash(pin)
    session.add(user)


def verify_pin(session: Session, user: Staff, pin: str, now: datetime | None = None) -> bool:
    """True when the PIN is right. Counts failures and locks the account after MAX_FAILURES."""
    now = now or utcnow()
    if user.disabled:
        raise Forbidden("account disabled", "このアカウントは無効です")
    if user.locked_until and user.locked_until > now:
        raise Forbidden(f"account locked until {user.locked_until:%H:%M:%S} UTC",
                        "暗証番号を5回間違えたため5分間ロックされています")
    if not user.pin_hash:
        raise Forbidden("no PIN set yet", "暗証番号が未設定です")
    try:
        ok = _hasher.verify(user.pin_hash, pin or "")
    except (VerificationError, InvalidHashError):
        ok = False
    if ok:
        user.failed_attempts = 0
        user.locked_until = None
    else:
        user.failed_attempts += 1
        if user.failed_attempts >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_attempts = 0
    session.add(user)
    return ok
