"""The hub's PFIF rows for one municipality: sought people, their links, the registry backup and the
閲覧制限 guard, as `app.hub_pfif` (the hub's PFIF desk) reads them. Split from it so that module stays
one job (import, link, list, decide, export) and a readable size; see its docstring for the rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from app.formats.pfif import PfifPerson, format_time, person_from_json
from app.services import pfif_rules as rules
from sync.hub import registry, restricted
from sync.hub.apply import in_
from sync.hub.hq import parse_time
from sync.hub.registry import DataKey, Records
from sync.hub.store import hub_evacuee, hub_person_link, hub_sought_link, hub_sought_person, resolve_municipality, set_tenant

SUGGESTED = "suggested"
SHOWN = (SUGGESTED, "confirmed")  # a link whose newest row is one of these is current
SEX_JA = {"M": "男", "F": "女"}


# ---- small helpers ----------------------------------------------------------------------------
def _pfif_time(dt: datetime | None) -> str | None:
    return format_time(dt) if dt is not None else None


def _level(row: Mapping[str, Any]) -> str:
    """The engine's level of a `suggested` row (`auto:` / `review:` at the start of its reasons)."""
    head = str(row["reasons"] or "").split(":", 1)[0]
    return head if head in rules.ENGINE else "review"


def _state(row: Mapping[str, Any]) -> rules.LinkState:
    """A hub link row in the engine's vocabulary (auto | review | confirmed | rejected)."""
    decision = _level(row) if row["decision"] == SUGGESTED else row["decision"]
    return rules.LinkState(decision, row["by_user"] or "", row["score"])


def _hub_decision(prop: rules.Proposal) -> tuple[str, str]:
    """(decision, reasons) of the row a proposal writes."""
    if prop.decision in rules.ENGINE:
        return SUGGESTED, f"{prop.decision}: {prop.reasons}"
    return prop.decision, prop.reasons


def _is_stub(record: Mapping[str, Any]) -> bool:
    return bool(record.get("stub"))


def _expired(record: Mapping[str, Any], now: datetime) -> bool:
    exp = parse_time(record.get("expiry_date"))
    return exp is not None and exp <= now


def _municipality(engine: Engine, municipality: str | None) -> str:
    with engine.connect() as conn:
        return resolve_municipality(conn, municipality)


# ---- rows -------------------------------------------------------------------------------------
@dataclass
class _Sought:
    """One hub_sought_person row in memory (record and notes parsed)."""

    sought_id: str
    person_record_id: str
    record: dict[str, Any]
    notes: list[dict[str, Any]]
    source_file: str | None = None
    imported_by: str | None = None
    imported_at: datetime | None = None
    new: bool = False
    changed: bool = False
    person_changed: bool = False

    @property
    def stub(self) -> bool:
        return _is_stub(self.record)

    def person(self) -> PfifPerson:
        return person_from_json(self.record)


def _sought_rows(conn: Connection, m: str, ids: Sequence[str] | None = None) -> list[_Sought]:
    q = select(hub_sought_person).where(hub_sought_person.c.municipality_code == m)
    if ids is not None:
        if not ids:
            return []
        q = q.where(in_(conn, hub_sought_person.c.sought_id, list(ids)))
    return [_Sought(r["sought_id"], r["person_record_id"], json.loads(r["record"]), json.loads(r["notes"]),
                    r["source_file"], r["imported_by"], r["imported_at"])
            for r in conn.execute(q.order_by(hub_sought_person.c.imported_at.desc(),
                                             hub_sought_person.c.sought_id)).mappings()]


def _link_rows(conn: Connection, m: str, sought_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    q = select(hub_sought_link).where(hub_sought_link.c.municipality_code == m)
    if sought_ids is not None:
        if not sought_ids:
            return []
        q = q.where(in_(conn, hub_sought_link.c.sought_id, list(sought_ids)))
    return [dict(r) for r in conn.execute(q.order_by(hub_sought_link.c.at, hub_sought_link.c.link_id)).mappings()]


def _latest(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["sought_id"], r["target_kind"], r["target_id"]): dict(r) for r in rows}


def _resident_links(conn: Connection, m: str) -> dict[str, str]:
    """evacuee → the resident of this municipality it is linked to (the hub's active links)."""
    return {r[0]: str(r[1]) for r in conn.execute(
        select(hub_person_link.c.evacuee_id, hub_person_link.c.resident_id).where(
            hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
            hub_person_link.c.resident_municipality.is_(None) | (hub_person_link.c.resident_municipality == m))
        .order_by(hub_person_link.c.linked_at, hub_person_link.c.link_id)).all()}


def _evacuee_index(conn: Connection, m: str) -> rules.EvacueeIndex:
    rows = conn.execute(select(hub_evacuee.c.evacuee_id, hub_evacuee.c.name, hub_evacuee.c.name_kana,
                               hub_evacuee.c.birth_date_raw, hub_evacuee.c.birth_date, hub_evacuee.c.sex).where(
        hub_evacuee.c.municipality_code == m, hub_evacuee.c.registered.is_(True))
        .order_by(hub_evacuee.c.registered_at, hub_evacuee.c.evacuee_id)).all()
    return rules.EvacueeIndex((rules.EvacueeTyped(r[0], r[1] or "", r[2] or "", r[3] or r[4] or "", r[5] or "")
                               for r in rows), _resident_links(conn, m))


# ---- the registry backup and 閲覧制限 -----------------------------------------------------------
@dataclass
class _Registry:
    """What this municipality's newest registry backup tells: records for display and households,
    and whether there is a backup at all (without the key, over-protect)."""

    key: DataKey | None
    snapshot: Any  # SnapshotInfo | None
    records: Records | None


def _registry(engine: Engine, key: DataKey | None, m: str) -> _Registry:
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, m)
    rec = registry.open_records(engine, key, m, snap) if snap is not None and key is not None else None
    return _Registry(key, snap, rec)


@dataclass
class Guard:
    """Who must never leave HQ's internal view (閲覧制限), by the hub's one rule for publication
    (`sync.hub.restricted.protected_for_publication` / `household_protected_residents`): over-
    protecting is the safe error. Resident targets are worked out when the guard is made."""

    m: str
    reg: _Registry
    residents: set[str] = field(default_factory=set)  # protected among the residents asked about
    evacuees: set[str] = field(default_factory=set)

    def resident(self, resident_id: str) -> bool:
        return resident_id in self.residents

    def target(self, kind: str, target_id: str) -> bool:
        return self.resident(target_id) if kind == "resident" else target_id in self.evacuees


def _guard(conn: Connection, m: str, reg: _Registry, residents: Iterable[str] = ()) -> Guard:
    """The guard for municipality m: every protected evacuee, and which of `residents` are protected.
    Without the data key, a municipality whose backups flag anyone protects every resident and every
    evacuee linked to one (fail closed)."""
    evacuees = restricted.protected_for_publication(conn, m, reg.key, reg.records)
    res = restricted.household_protected_residents(conn, m, reg.key, reg.records, residents)
    set_tenant(conn, m)
    return Guard(m, reg, res, evacuees)
