"""Staff accounts: one per person, PIN-protected, quick to switch.

An account is created with a PIN, or with a one-time setup code (shown once to the admin who
created it) that the person types with the PIN they choose; without either nobody can use it.

Why PINs and not passwords: the 2011 leak came from a shared login kept because logging in
again took minutes. A 4–6 digit PIN with argon2 and a limit on wrong tries per device is quick
enough that nobody shares, and slow enough to guess that nobody gets in by trying.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from app.models import Staff
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

ROLES = ("staff", "desk", "hq", "admin")
PIN_RE = re.compile(r"^[0-9]{4,6}$")
#: setup codes: no 0/O, 1/I/L look-alikes
SETUP_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

# Moderate argon2 cost: verifying must stay well under the 3-second switch target on an old laptop.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_dummy_hash: str | None = None


def check_pin_format(pin: str) -> None:
    if not PIN_RE.match(pin or ""):
        raise InvalidInput("PIN must be 4 to 6 digits", "暗証番号は4〜6桁の数字です", "pin")


def add_user(session: Session, name: str, role: str, pin: str | None = None) -> Staff:
    """An account with `pin`, or without one: then nobody can use it until an admin hands out a
    setup code (`add_user_with_code` / `issue_setup_code`) — a PIN-less account must never be
    claimable by the first person who picks it on the 交代 screen."""
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


def add_user_with_code(session: Session, name: str, role: str, pin: str | None = None) -> tuple[Staff, str | None]:
    """`add_user`; without a PIN also a one-time setup code (returned once, stored only as a hash)."""
    user = add_user(session, name, role, pin or None)
    return user, (None if pin else issue_setup_code(session, user))


def new_setup_code() -> str:
    """XXXX-XXXX from 31 unambiguous letters and digits (~40 bits), read aloud or copied from paper."""
    raw = "".join(secrets.choice(SETUP_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_setup_code(code: str) -> str:
    return re.sub(r"[\s\-ー－]", "", unicodedata.normalize("NFKC", code or "")).upper()


def issue_setup_code(session: Session, user: Staff) -> str:
    """A new one-time setup code for `user` (also a PIN reset: the old PIN stops working)."""
    code = new_setup_code()
    user.setup_hash = _hasher.hash(normalise_setup_code(code))
    user.pin_hash = None
    user.failed_attempts = 0
    user.locked_until = None
    session.add(user)
    return code


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


def _check(hash_: str | None, secret: str) -> bool:
    """argon2 verify; without a hash a dummy one is verified, so the time taken tells nothing."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_hex(16))
    try:
        ok = _hasher.verify(hash_ or _dummy_hash, secret)
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and bool(hash_)


def set_pin(session: Session, user: Staff, setup_code: str, pin: str) -> bool:
    """First use: the person chooses their PIN with the setup code an admin gave them.

    False (and nothing changed) when the code is wrong, already used, or the account has a PIN —
    the same answer in the same time, so trying tells nobody which accounts have a PIN."""
    check_pin_format(pin)
    if user.disabled:
        raise Forbidden("account disabled", "このアカウントは無効です")
    if not _check(user.setup_hash, normalise_setup_code(setup_code)) or user.pin_hash:
        return False
    user.pin_hash = _hasher.hash(pin)
    user.setup_hash = None
    session.add(user)
    return True


def verify_pin(session: Session, user: Staff, pin: str) -> bool:
    """True when the PIN is right. An account without a PIN answers exactly like a wrong PIN.

    Wrong tries are limited per client and per (client, account) by `app.services.login_throttle`
    in the face that knows the client; the account itself is never locked for everyone."""
    if user.disabled:
        raise Forbidden("account disabled", "このアカウントは無効です")
    return _check(user.pin_hash, pin or "")
