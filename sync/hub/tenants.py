"""Municipalities on one hub, their sharing agreements and their HQ staff accounts.

- A municipality (tenant) is identified by its 全国地方公共団体コード: five digits and a check
  digit (JIS X 0402), e.g. 032026.  Its name is public; everything else is its own.
- ``share(home, host)``: the home municipality lets the hub match evacuees at the host's
  shelters against the home's registry (災害対策基本法 allows provision to other local
  governments).  It is an explicit, audited agreement, revocable with ``unshare``; the row
  stays (status ``revoked``) so the history is never lost.
- HQ users (災害対策本部) belong to one municipality; they call the hub's ``/v1/hq/…`` routes
  with a bearer token that is shown once and stored only as its SHA-256.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from sync.errors import AuthError, TenantError
from sync.hub import audit, crossmatch
from sync.hub.store import (
    IMPLICIT_TENANT, _insert, homes_for_host, hub_municipality, hub_share, hub_user, hub_wide_lock, municipality_names, new_row_id,
    resolve_municipality, set_tenant, state_lookup_key, utcnow,
)

#: hq: 災害対策本部 (safety list, evacuees, review); desk: the hub's 安否照会 and certificate desks only;
#: admin: everything, plus devices and the audit log
ROLES = ("hq", "desk", "admin")
_CODE = re.compile(r"^\d{6}$")


def check_digit(code5: str) -> str:
    """JIS X 0402 check digit of a five-digit local government code."""
    s = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2)))
    r = s % 11
    return str((11 - r) % 10 if s >= 11 else 11 - s)


def validate_code(code: str) -> str:
    code = code.strip()
    if not _CODE.match(code):
        raise TenantError(f"municipality code {code!r} must be 6 digits (全国地方公共団体コード, e.g. 032026)")
    if code == IMPLICIT_TENANT or code[:2] == "00" or int(code[:2]) > 47:
        raise TenantError(f"municipality code {code}: the first two digits must be a prefecture (01–47)")
    if check_digit(code[:5]) != code[5]:
        raise TenantError(f"municipality code {code}: check digit should be {check_digit(code[:5])} "
                          f"({code[:5]}{check_digit(code[:5])})")
    return code


def add_municipality(engine: Engine, code: str, name: str, *, actor: str = "operator") -> dict[str, Any]:
    code = validate_code(code)
    name = name.strip()
    if not name:
        raise TenantError("municipality name must not be empty")
    with engine.begin() as conn:
        hub_wide_lock(conn, "municipality")
        have = municipality_names(conn)
        if code in have:
            raise TenantError(f"municipality {code} already exists ({have[code]})")
        if name in have.values():
            raise TenantError(f"another municipality is already named {name}")
        conn.execute(hub_municipality.insert().values(municipality_code=code, name=name, created_at=utcnow()))
        audit.record(conn, code, actor=actor, action="municipality.added", detail={"code": code, "name": name})
    return {"municipality_code": code, "name": name}


def list_municipalities(engine: Engine) -> list[dict[str, str]]:
    with engine.connect() as conn:
        return [{"municipality_code": c, "name": n} for c, n in sorted(municipality_names(conn).items())]


# ---- agreements --------------------------------------------------------------------------------
def _pair(conn: Any, home: str, host: str) -> tuple[str, str]:
    home, host = resolve_municipality(conn, home), resolve_municipality(conn, host)
    if home == IMPLICIT_TENANT or host == IMPLICIT_TENANT:
        raise TenantError("agreements are between municipalities; add them first (`anpi hub municipality add`)")
    if home == host:
        raise TenantError("home and host must be different municipalities")
    return home, host


def share(engine: Engine, home: str, host: str, *, actor: str = "operator") -> bool:
    """Record (or re-activate) the agreement; False when it was already active."""
    now = utcnow()
    with engine.begin() as conn:
        home, host = _pair(conn, home, host)
        names = municipality_names(conn)
        set_tenant(conn, home)
        row = conn.execute(select(hub_share.c.status).where(hub_share.c.municipality_code == home,
                                                            hub_share.c.host_code == host)).first()
        if row is not None and row[0] == "active":
            return False
        if row is None:
            conn.execute(hub_share.insert().values(municipality_code=home, host_code=host, status="active",
                                                   created_at=now, created_by=actor))
        else:
            conn.execute(update(hub_share).where(hub_share.c.municipality_code == home, hub_share.c.host_code == host)
                         .values(status="active", created_at=now, created_by=actor, revoked_at=None, revoked_by=None))
        detail = {"home": home, "home_name": names[home], "host": host, "host_name": names[host]}
        for m in sorted((home, host)):
            audit.record(conn, m, actor=actor, action="share.granted", detail=detail)
    crossmatch.enqueue_host_backlog(engine, host)
    return True


def unshare(engine: Engine, home: str, host: str, *, actor: str = "operator") -> bool:
    """Revoke the agreement (the row stays, marked revoked); False when it was not active."""
    now = utcnow()
    with engine.begin() as conn:
        home, host = _pair(conn, home, host)
        names = municipality_names(conn)
        set_tenant(conn, home)
        res = conn.execute(update(hub_share).where(hub_share.c.municipality_code == home,
                                                   hub_share.c.host_code == host, hub_share.c.status == "active")
                           .values(status="revoked", revoked_at=now, revoked_by=actor))
        if not res.rowcount:
            return False
        detail = {"home": home, "home_name": names[home], "host": host, "host_name": names[host]}
        for m in sorted((home, host)):
            audit.record(conn, m, actor=actor, action="share.revoked", detail=detail)
    return True


def shares_of(conn: Any, m: str) -> list[dict[str, Any]]:
    """Agreements where ``m`` is home or host (what its HQ may know about)."""
    set_tenant(conn, m)
    names = municipality_names(conn)
    rows = conn.execute(select(hub_share).where((hub_share.c.municipality_code == m) | (hub_share.c.host_code == m))
                        .order_by(hub_share.c.municipality_code, hub_share.c.host_code)).mappings().all()
    return [{"home": r["municipality_code"], "home_name": names.get(r["municipality_code"]), "host": r["host_code"],
             "host_name": names.get(r["host_code"]), "status": r["status"],
             "since": r["created_at"].isoformat(timespec="seconds"),
             "revoked_at": r["revoked_at"].isoformat(timespec="seconds") if r["revoked_at"] else None} for r in rows]


# ---- HQ users ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HqUser:
    municipality_code: str
    user_id: str
    name: str
    role: str

    def can(self, perm: str) -> bool:
        """perm: "hq" (HQ's views), "desk" (inquiries, certificates) or "admin"."""
        if self.role == "admin":
            return True
        return perm == self.role or (perm == "desk" and self.role == "hq")


def token_hash(token: str) -> str:
    return hashlib.sha256(b"anpi-hub-token:" + token.strip().encode("utf-8")).hexdigest()


def add_user(engine: Engine, municipality: str | None, name: str, role: str, *, actor: str = "operator") -> tuple[HqUser, str]:
    """Create an HQ account; returns it with its token (shown once, stored only as a hash)."""
    if role not in ROLES:
        raise TenantError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    name = name.strip()
    if not name:
        raise TenantError("user name must not be empty")
    token = "anpi-hq-" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        m = resolve_municipality(conn, municipality)
        set_tenant(conn, m)
        if conn.execute(select(hub_user.c.user_id).where(hub_user.c.municipality_code == m,
                                                         hub_user.c.name == name)).first():
            raise TenantError(f"user {name!r} already exists in municipality {m}")
        uid = new_row_id()
        conn.execute(_insert(conn, hub_user).values(municipality_code=m, user_id=uid, name=name, role=role,
                                                    token_hash=token_hash(token), created_at=utcnow()))
        audit.record(conn, m, actor=actor, action="user.added", detail={"name": name, "role": role})
    return HqUser(m, uid, name, role), token


def list_users(engine: Engine, municipality: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        m = resolve_municipality(conn, municipality)
        set_tenant(conn, m)
        rows = conn.execute(select(hub_user).where(hub_user.c.municipality_code == m)
                            .order_by(hub_user.c.created_at)).mappings().all()
    return [{"municipality_code": m, "name": r["name"], "role": r["role"], "disabled": r["disabled_at"] is not None,
             "created_at": r["created_at"].isoformat(timespec="seconds")} for r in rows]


def disable_user(engine: Engine, municipality: str | None, name: str, *, actor: str = "operator") -> None:
    with engine.begin() as conn:
        m = resolve_municipality(conn, municipality)
        set_tenant(conn, m)
        res = conn.execute(update(hub_user).where(hub_user.c.municipality_code == m, hub_user.c.name == name,
                                                  hub_user.c.disabled_at.is_(None)).values(disabled_at=utcnow()))
        if not res.rowcount:
            raise TenantError(f"no active user {name!r} in municipality {m}")
        audit.record(conn, m, actor=actor, action="user.disabled", detail={"name": name})


def authenticate_user(engine: Engine, authorization: str | None) -> HqUser:
    """``Authorization: Bearer <token>`` → the HQ user, or :class:`AuthError` (401)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise AuthError("unauthenticated", "HQ routes need Authorization: Bearer <token>", 401)
    h = token_hash(authorization[7:])
    with engine.connect() as conn:
        state_lookup_key(conn, "token", h)
        r = conn.execute(select(hub_user).where(hub_user.c.token_hash == h)).mappings().first()
    if r is None or r["disabled_at"] is not None:
        raise AuthError("unauthenticated", "unknown or disabled token", 401)
    return HqUser(r["municipality_code"], r["user_id"], r["name"], r["role"])
