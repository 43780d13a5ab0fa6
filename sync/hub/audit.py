"""The hub's audit log: one append-only, hash-chained sequence per municipality.

Every agreement (share / unshare), registry import, registry disclosure to a laptop, HQ user
change, export and cross-town disclosure writes a row in the municipality it concerns, inside
the same transaction as the change.  Each row's hash covers the previous row's hash, so a
removed or edited row breaks the chain (:func:`verify`).  Rows live in the municipality's
tenant like everything else, so one town's HQ never reads another's log.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from sync.canonical import canonical_bytes
from sync.hub.store import hub_audit, set_tenant, utcnow


def _lock(conn: Connection, m: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727275, hashtext(current_schema() || ':' || %(m)s))",
                             {"m": m})


def _hash(prev: str, seq: int, at: str, actor: str, action: str, detail: str) -> str:
    return hashlib.sha256(prev.encode() + canonical_bytes(
        {"seq": seq, "at": at, "actor": actor, "action": action, "detail": detail})).hexdigest()


def record(conn: Connection, m: str, *, actor: str, action: str, detail: Mapping[str, Any]) -> None:
    """Append one row to municipality ``m``'s chain (inside the caller's transaction).

    Leaves the transaction's tenant set to ``m``.  Callers writing rows for several
    municipalities in one transaction call this in code order — sorted, never interleaved
    with taking another hub lock — so two transactions cannot wait for each other.
    """
    set_tenant(conn, m)
    _lock(conn, m)
    last = conn.execute(select(hub_audit.c.seq, hub_audit.c.hash).where(hub_audit.c.municipality_code == m)
                        .order_by(hub_audit.c.seq.desc()).limit(1)).first()
    seq = int(last[0]) + 1 if last else 1
    prev = last[1] if last else ""
    now = utcnow()
    body = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, default=str)
    conn.execute(hub_audit.insert().values(
        municipality_code=m, seq=seq, at=now, actor=actor, action=action, detail=body, prev_hash=prev,
        hash=_hash(prev, seq, now.isoformat(), actor, action, body)))


def entries(conn: Connection, m: str, limit: int = 200) -> list[dict[str, Any]]:
    set_tenant(conn, m)
    rows = conn.execute(select(hub_audit).where(hub_audit.c.municipality_code == m)
                        .order_by(hub_audit.c.seq.desc()).limit(limit)).mappings().all()
    return [{"seq": int(r["seq"]), "at": r["at"].isoformat(), "actor": r["actor"], "action": r["action"],
             "detail": json.loads(r["detail"])} for r in rows]


def verify(conn: Connection, m: str) -> int | None:
    """The seq of the first broken row of ``m``'s chain, or ``None`` when intact."""
    set_tenant(conn, m)
    prev = ""
    for r in conn.execute(select(hub_audit).where(hub_audit.c.municipality_code == m)
                          .order_by(hub_audit.c.seq)).mappings():
        at = r["at"].isoformat() if r["at"].tzinfo else r["at"].replace(tzinfo=utcnow().tzinfo).isoformat()
        if r["prev_hash"] != prev or r["hash"] != _hash(prev, int(r["seq"]), at, r["actor"], r["action"],
                                                        r["detail"]):
            return int(r["seq"])
        prev = r["hash"]
    return None


def count(conn: Connection, m: str, action: str | None = None) -> int:
    set_tenant(conn, m)
    q = select(func.count()).select_from(hub_audit).where(hub_audit.c.municipality_code == m)
    if action:
        q = q.where(hub_audit.c.action == action)
    return int(conn.execute(q).scalar_one())
