"""Laptop audit chains seen from the hub: the head each laptop reports at every sync, and its entries.

Why: a laptop's audit chain is keyed (HMAC), so an edited or removed *middle* entry breaks it,
but removing the *last* entries leaves a shorter chain that still verifies. The hub therefore
keeps the head (seq, hash) each laptop reported. At the next sync the laptop tells the hub what
its chain now holds at that seq (``anchor``); because every hash covers the one before it, a
different or missing hash there means entries up to that head were removed or rewritten —
even when new entries have been written since. The hub says so (``cut``) in
``anpi hub audit verify --device …``.

A legitimate shortening is ``anpi restore``: the laptop then names the database it replaced
(kept beside the restored one) and that database's hash at the anchor. If it matches what
the hub saw, the report is ``restored``: the entries written after the backup are not in the
laptop's log any more, but they were not forged away; the hub keeps the copies it was sent.

The laptops also upload their entries (no more than their own admins can read), so the HQ's
anomaly report can run across every laptop of a municipality. Nothing here imports ``app/``.

Threat model: this catches a person who edits the laptop's database (sqlite3 shell, a copied
file put back). Someone who also replaces the Anpi program on the laptop can lie to the hub;
that is out of scope here.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from sync.errors import AuditReportError
from sync.hub.store import (
    bulk_insert, hub_audit_head, hub_device, hub_device_audit, new_row_id, set_tenant, utcnow,
)

#: most entries one report may carry (the laptop sends the rest in the next request)
MAX_ENTRIES = 1000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _latest(conn: Connection, m: str, device_id: str) -> Mapping[str, Any] | None:
    return conn.execute(select(hub_audit_head).where(
        hub_audit_head.c.municipality_code == m, hub_audit_head.c.device_id == device_id)
        .order_by(hub_audit_head.c.received_at.desc(), hub_audit_head.c.report_id.desc()).limit(1)).mappings().first()


def known_head(engine: Engine, device_id: str, m: str) -> dict[str, Any]:
    """What the laptop must answer for: the last head the hub holds, and how far its entries came."""
    with engine.begin() as conn:
        set_tenant(conn, m)
        last = _latest(conn, m, device_id)
    if last is None:
        return {"seq": None, "uploaded": 0}
    return {"seq": int(last["seq"]), "uploaded": int(last["uploaded_to"])}


def _check(report: Mapping[str, Any]) -> dict[str, Any]:
    head = report.get("head")
    if not isinstance(head, Mapping):
        raise AuditReportError("audit report needs a head object")
    seq, digest = head.get("seq"), head.get("hash")
    if not isinstance(seq, int) or seq < 1 or not isinstance(digest, str) or not _HEX64.match(digest):
        raise AuditReportError("audit head needs seq (>= 1) and a 64-hex hash")
    entries = report.get("entries") or []
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise AuditReportError(f"audit entries must be a list of at most {MAX_ENTRIES}")
    for e in entries:
        if not (isinstance(e, Mapping) and isinstance(e.get("id"), int) and isinstance(e.get("hash"), str)
                and _HEX64.match(e["hash"])):
            raise AuditReportError("every audit entry needs an integer id and a 64-hex hash")
    return dict(head)


def judge(last: Mapping[str, Any] | None, head: Mapping[str, Any]) -> tuple[str, str]:
    """(status, English reason) of one report against the head the hub held before it."""
    if last is None:
        return "first", "first report from this laptop"
    known_seq, known_hash = int(last["seq"]), str(last["hash"])
    anchor = head.get("anchor") or {}
    if anchor.get("seq") != known_seq:
        return "unchecked", f"the laptop answered for entry {anchor.get('seq')}, not {known_seq}"
    if anchor.get("hash") == known_hash:
        return "ok", f"entry {known_seq} is unchanged; the chain grew to {head['seq']}"
    restored = head.get("restored") or {}
    if restored.get("anchor_hash") == known_hash:
        return "restored", (f"restored from a backup: the replaced database ({restored.get('kept_as')}) held entry "
                            f"{known_seq} as reported; the laptop's log now ends at {head['seq']}")
    if anchor.get("hash") is None:
        return "cut", (f"TAIL CUT: entry {known_seq} (reported before) is gone; the laptop's chain now ends "
                       f"at {head['seq']}")
    return "cut", (f"TAIL CUT: entry {known_seq} no longer has the hash reported before: entries up to "
                   f"{known_seq} were removed or rewritten and the chain recomputed")


def record_report(engine: Engine, device_id: str, m: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """Store one report (and the entries it carries); answer with the hub's verdict."""
    head = _check(report)
    entries = list(report.get("entries") or [])
    now = utcnow()
    with engine.begin() as conn:
        set_tenant(conn, m)
        last = _latest(conn, m, device_id)
        status, reason = judge(last, head)
        before = int(last["uploaded_to"]) if last is not None else 0
        top = max((int(e["id"]) for e in entries), default=0)
        # after a divergence the laptop sends its chain again from the start (stored beside the old copies)
        uploaded = max(before, top) if status in ("first", "ok", "unchecked") else top
        uploaded = min(uploaded, int(head["seq"]))
        bulk_insert(conn, hub_device_audit, [
            {"municipality_code": m, "device_id": device_id, "seq": int(e["id"]), "hash": e["hash"],
             "received_at": now, "entry": json.dumps(dict(e), ensure_ascii=False, sort_keys=True)}
            for e in entries])
        anchor = head.get("anchor") or {}
        conn.execute(hub_audit_head.insert().values(
            municipality_code=m, report_id=new_row_id(), device_id=device_id, received_at=now, seq=int(head["seq"]),
            hash=head["hash"], anchor_seq=anchor.get("seq"), anchor_hash=anchor.get("hash"), status=status,
            uploaded_to=uploaded, detail=json.dumps({"head": head, "reason": reason, "entries": len(entries)},
                                                    ensure_ascii=False, sort_keys=True, default=str)))
    return {"status": status, "reason": reason, "uploaded": uploaded}


def _device(conn: Connection, m: str, name_or_id: str) -> Mapping[str, Any]:
    rows = conn.execute(select(hub_device.c.device_id, hub_device.c.name, hub_device.c.shelter_name).where(
        hub_device.c.municipality_code == m, hub_device.c.device_id.is_not(None),
        (hub_device.c.device_id == name_or_id) | (hub_device.c.name == name_or_id))).mappings().all()
    if len(rows) != 1:
        raise AuditReportError(f"no device {name_or_id!r} in municipality {m}" if not rows
                          else f"{len(rows)} devices are named {name_or_id!r}: give the device id")
    return rows[0]


def verify_device(engine: Engine, m: str, name_or_id: str) -> dict[str, Any]:
    """Every head a laptop reported, and whether its tail was ever cut (``ok`` False) or restored."""
    with engine.begin() as conn:
        set_tenant(conn, m)
        dev = _device(conn, m, name_or_id)
        rows = conn.execute(select(hub_audit_head).where(
            hub_audit_head.c.municipality_code == m, hub_audit_head.c.device_id == dev["device_id"])
            .order_by(hub_audit_head.c.received_at, hub_audit_head.c.report_id)).mappings().all()
        held = conn.execute(select(func.count()).select_from(hub_device_audit).where(
            hub_device_audit.c.municipality_code == m,
            hub_device_audit.c.device_id == dev["device_id"])).scalar_one()
    reports = [{"received_at": r["received_at"].isoformat(), "seq": int(r["seq"]), "hash": r["hash"],
                "anchor_seq": r["anchor_seq"], "status": r["status"],
                "reason": json.loads(r["detail"]).get("reason", "")} for r in rows]
    problems = [r for r in reports if r["status"] in ("cut", "restored")]
    return {"device_id": dev["device_id"], "device": dev["name"], "reports": len(reports),
            "latest": reports[-1] if reports else None, "entries_held": int(held),
            "ok": not any(r["status"] == "cut" for r in reports), "problems": problems}


def device_entries(engine: Engine, m: str) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Every uploaded laptop entry of a municipality: device name → (device id, entries)."""
    out: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    with engine.begin() as conn:
        set_tenant(conn, m)
        names = {r[0]: r[1] for r in conn.execute(select(hub_device.c.device_id, hub_device.c.name).where(
            hub_device.c.municipality_code == m, hub_device.c.device_id.is_not(None)))}
        for r in conn.execute(select(hub_device_audit.c.device_id, hub_device_audit.c.entry).where(
                hub_device_audit.c.municipality_code == m).order_by(hub_device_audit.c.device_id,
                                                                    hub_device_audit.c.seq)):
            out.setdefault(names.get(r[0]) or r[0], (r[0], []))[1].append(json.loads(r[1]))
    return out


def device_context(engine: Engine, m: str, key: Any, device_id: str,
                   resident_ids: set[str]) -> tuple[set[str], set[str]]:
    """(residents registered at this laptop's shelter, 閲覧制限 subjects) for the anomaly report.

    Without the hub data key the 閲覧制限 MACs cannot be read: the second set is then empty (the
    caller says the rule was skipped) rather than "everyone", which would flag every look.
    """
    from sync.hub import restricted
    from sync.hub.store import hub_decision, hub_evacuee

    with engine.begin() as conn:
        set_tenant(conn, m)
        registered = {f"resident:{r[0]}" for r in conn.execute(select(hub_decision.c.resident_id).where(
            hub_decision.c.municipality_code == m, hub_decision.c.device_id == device_id,
            hub_decision.c.resident_id.is_not(None),
            hub_decision.c.decision.in_(("auto", "review", "confirmed"))).distinct())}
        flagged: set[str] = set()
        if key is not None:
            flagged = {f"resident:{r}" for r in restricted.protected_residents(conn, m, key, sorted(resident_ids))}
            flagged |= {f"evacuee:{r[0]}" for r in conn.execute(select(hub_evacuee.c.evacuee_id).where(
                hub_evacuee.c.municipality_code == m, hub_evacuee.c.withheld.is_(True)))}
    return registered, flagged
