"""閲覧制限 (DV等支援措置) at the hub: one rule for who is protected, for every desk and the feed.

The hub used to decide this four ways (feed withholding, 安否照会, PFIF, certificates) and the
differences leaked: a person's second registration was published while the first was protected,
a link to another town's flagged resident went unnoticed, a missing data key read as "nobody is
flagged". Everything that decides a disclosure now asks this module.

**An evacuee (one registration) is protected** — over-protecting is the safe error — when:

- the hub withholds it (``hub_evacuee.withheld``, sticky), or its care flags say ``restricted``,
  or its care JSON is damaged or not an object (fail closed);
- its active person link, or its newest decision when that is a pending ``review``, names a
  resident (of this or another municipality) flagged in *any* registry backup that municipality
  holds at the hub (``hub_restricted``: keyed MACs of 宛名番号, so the data key is needed);
- another municipality found it to be one of its protected residents (``hub_cross_link.restricted``);
- **one person, one answer**: registrations with the same active person link (``person_key``)
  are one person — if any of them is protected, all are.

**Without the data key** a flagged resident cannot be told from another. A link (or pending
review) to a resident of a municipality that holds any flagged MAC then protects the evacuee; a
municipality with no flagged MAC at all (no backup, or nobody flagged in any) protects nobody by
link — there is nothing the key could have found. (This is the one refinement over the rule
`app.hub_inquiry.restricted_rows` had, which protected every linked evacuee without a key; it
is what lets the feed's sticky withholding use the same rule without withholding a key-less
hub's every linked evacuee.)

**A resident** (``protected_residents``) is protected when flagged in any backup of the
municipality (without the key: when the municipality holds any flagged MAC).

**Household widening (PFIF, and since issue 12 安否照会 and the feed)** — ``protected_for_publication``: a Person Finder export is
read by anyone, so the shelter's PFIF rule (`app.services.pfif.protected_evacuees`) also protects
whoever registered together with a protected person (the household key typed at intake) and an
evacuee linked to a resident whose registry household (newest backup) holds a flagged member: a
child's public record would say where the mother is. Since issue 12 this household-wide answer
(``protected_whole``) is what 安否照会 and the feed's withholding ask too: a child's registration
told where the flagged mother was. Certificates keep to their own household (the registry
household printed on them, ``app.hub_certificates.restricted_numbers``).

**One rule, household-wide, for every output** — ``protected_whole``: the decision itself is the
pure rule in :mod:`matching.disclosure` (shared with the shelter's ``app.services.disclosure``):
this module only gathers the facts (who is flagged, which registrations are one person, which
registered together, which registry households hold a flagged member) and asks it. 安否照会 and the
feed's withholding use the household-wide answer too: a child's registration would otherwise tell
where the flagged mother is (issue 12). A registration the feed served before it became protected
is withdrawn from the other laptops by an ``evacuee.retracted`` notice (:func:`sync.hub.apply.mark_withheld`).

`sync/` never imports `app/`: the facts are gathered here so `sync.hub.apply` can use them.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from matching.disclosure import household_facts, is_protected, spread
from sync.hub.registry import DataKey, Records
from sync.hub.store import (
    homes_for_host, hub_cross_link, hub_decision, hub_evacuee, hub_person_link, hub_restricted, in_, set_tenant,
)


# ---- small pieces --------------------------------------------------------------------------------
def care_protects(text: Any) -> bool:
    """A care JSON that says ``restricted``, or that cannot be read as an object (fail closed)."""
    if not text:
        return False
    try:
        care = json.loads(text)
    except (TypeError, ValueError):
        return True
    return not isinstance(care, dict) or care.get("restricted") is True


def holds_flags(conn: Connection, town: str) -> bool:
    """Whether any registry backup of ``town`` flags anyone (knowable without the data key)."""
    set_tenant(conn, town)
    return conn.execute(select(func.count()).select_from(hub_restricted).where(
        hub_restricted.c.municipality_code == town)).scalar_one() > 0


def _flagged(conn: Connection, town: str, key: DataKey | None, resident_ids: Iterable[str]) -> set[str]:
    """Which of ``town``'s 宛名番号 are flagged in any of its backups (the caller restores the tenant)."""
    ids = sorted({str(r) for r in resident_ids if r})
    if not ids:
        return set()
    if key is None:
        return set(ids) if holds_flags(conn, town) else set()
    macs = {key.mac(f"{town}:{rid}"): rid for rid in ids}
    set_tenant(conn, town)
    hit = conn.execute(select(hub_restricted.c.rid_mac).where(
        hub_restricted.c.municipality_code == town, in_(conn, hub_restricted.c.rid_mac, sorted(macs)))).all()
    return {macs[r[0]] for r in hit}


def protected_residents(conn: Connection, m: str, key: DataKey | None, resident_ids: Iterable[str]) -> set[str]:
    """Of these 宛名番号 of municipality ``m``, those flagged 閲覧制限 in any of m's backups at the hub;
    without the data key, all of them when m holds any flagged MAC (fail closed)."""
    try:
        return _flagged(conn, m, key, resident_ids)
    finally:
        set_tenant(conn, m)


# ---- evacuees ------------------------------------------------------------------------------------
def _links(conn: Connection, m: str, ids: Sequence[str] | None) -> list[Any]:
    q = select(hub_person_link.c.evacuee_id, hub_person_link.c.person_key, hub_person_link.c.resident_id,
               hub_person_link.c.resident_municipality).where(
        hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None))
    if ids is not None:
        q = q.where(in_(conn, hub_person_link.c.evacuee_id, list(ids)))
    return conn.execute(q).all()


def _groups(conn: Connection, m: str, ids: Sequence[str] | None) -> tuple[list[str] | None, dict[str, str], list[Any]]:
    """(the evacuees to look at — ``ids`` and every other registration of the same people —,
    evacuee → person key, their active links)."""
    links = _links(conn, m, ids)
    if ids is not None:
        keys = sorted({r.person_key for r in links})
        if keys:
            more = conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.person_key,
                                       hub_person_link.c.resident_id, hub_person_link.c.resident_municipality).where(
                hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
                in_(conn, hub_person_link.c.person_key, keys))).all()
            seen = {r.evacuee_id for r in links}
            links += [r for r in more if r.evacuee_id not in seen]
        ids = sorted(set(ids) | {r.evacuee_id for r in links})
    return ids, {r.evacuee_id: r.person_key for r in links}, links


def _cross_town(conn: Connection, m: str, ids: Sequence[str] | None) -> set[str]:
    """Evacuees at m's shelters that another municipality found to be one of its protected residents."""
    out: set[str] = set()
    try:
        for home in homes_for_host(conn, m, active_only=False):
            set_tenant(conn, home)
            q = select(hub_cross_link.c.evacuee_id).where(
                hub_cross_link.c.municipality_code == home, hub_cross_link.c.host_code == m,
                hub_cross_link.c.restricted.is_(True))
            if ids is not None:
                q = q.where(in_(conn, hub_cross_link.c.evacuee_id, list(ids)))
            out |= {r[0] for r in conn.execute(q).all()}
    finally:
        set_tenant(conn, m)
    return out


def _by_link(conn: Connection, m: str, key: DataKey | None, wanted: dict[str, set[tuple[str, str]]]) -> set[str]:
    """Evacuees whose linked (or pending-review) resident is flagged in that resident's town."""
    by_town: dict[str, dict[str, set[str]]] = {}  # town → 宛名番号 → evacuees
    for eid, pairs in wanted.items():
        for town, rid in pairs:
            by_town.setdefault(town, {}).setdefault(rid, set()).add(eid)
    out: set[str] = set()
    try:
        for town, rids in sorted(by_town.items()):
            for rid in _flagged(conn, town, key, rids):
                out |= rids[rid]
    finally:
        set_tenant(conn, m)
    return out


def _spread(protected: set[str], groups: Iterable[Iterable[str]]) -> set[str]:
    """Any protected member protects its whole group: the one rule (`matching.disclosure.spread`)."""
    return spread(protected, groups)


def _protected(conn: Connection, m: str, key: DataKey | None,
               evacuee_ids: Iterable[str] | None) -> tuple[set[str], dict[str, str], list[str] | None]:
    """(protected evacuees among the looked-at ones, evacuee → person key, the looked-at ids)."""
    set_tenant(conn, m)
    ids0 = None if evacuee_ids is None else sorted({str(e) for e in evacuee_ids if e})
    if ids0 is not None and not ids0:
        return set(), {}, []
    ids, pkey, links = _groups(conn, m, ids0)
    out: set[str] = set()
    q = select(hub_evacuee.c.evacuee_id, hub_evacuee.c.withheld, hub_evacuee.c.care).where(
        hub_evacuee.c.municipality_code == m)
    if ids is not None:
        q = q.where(in_(conn, hub_evacuee.c.evacuee_id, ids))
    for eid, withheld, care in conn.execute(q).all():
        if withheld or care_protects(care):
            out.add(eid)
    wanted: dict[str, set[tuple[str, str]]] = {}
    for r in links:
        wanted.setdefault(r.evacuee_id, set()).add((r.resident_municipality or m, str(r.resident_id)))
    dq = select(hub_decision.c.evacuee_id, hub_decision.c.decision, hub_decision.c.resident_id,
                hub_decision.c.resident_municipality).where(hub_decision.c.municipality_code == m)
    if ids is not None:
        dq = dq.where(in_(conn, hub_decision.c.evacuee_id, ids))
    newest: dict[str, Any] = {}
    for d in conn.execute(dq.order_by(hub_decision.c.at, hub_decision.c.decision_id)).all():
        newest[d.evacuee_id] = d
    for eid, d in newest.items():  # a pending review naming a protected candidate protects too
        if d.decision == "review" and d.resident_id:
            wanted.setdefault(eid, set()).add((d.resident_municipality or m, str(d.resident_id)))
    out |= _by_link(conn, m, key, wanted)
    out |= _cross_town(conn, m, ids)
    groups: dict[str, set[str]] = {}
    for eid, pk in pkey.items():
        groups.setdefault(pk, set()).add(eid)
    return _spread(out, groups.values()), pkey, ids


def protected_evacuees(conn: Connection, m: str, key: DataKey | None, evacuee_ids: Iterable[str] | None = None,
                       *, whole_person: bool = False) -> set[str]:
    """Which evacuees registered at m's shelters are 閲覧制限 (the rule in the module notes).

    ``evacuee_ids`` None: every evacuee of m. Otherwise the answer is among those ids, unless
    ``whole_person``: then it also names the other registrations of the same people (what the
    feed must withhold along with them). Leaves the transaction's tenant at m."""
    out, _pkey, ids = _protected(conn, m, key, evacuee_ids)
    if evacuee_ids is None or whole_person:
        return out
    asked = {str(e) for e in evacuee_ids if e}
    return out & asked


# ---- publication (PFIF) --------------------------------------------------------------------------
def household_index(records: Records) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(宛名番号 → 世帯番号, 世帯番号 → its members' 宛名番号) of one backup."""
    ri, hi = records.fields.index("resident_id"), records.fields.index("household_id")
    of: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for row in records.rows:
        hh = str(row[hi] or "")
        if hh:
            of[str(row[ri])] = hh
            members.setdefault(hh, []).append(str(row[ri]))
    return of, members


def household_protected_residents(conn: Connection, m: str, key: DataKey | None, records: Records | None,
                                  resident_ids: Iterable[str]) -> set[str]:
    """Of these 宛名番号 of m, those protected for publication: flagged in any backup, or living in a
    registry household (m's newest backup, ``records``) with a member flagged in any backup."""
    ids = {str(r) for r in resident_ids if r}
    out = protected_residents(conn, m, key, ids)
    if records is None or not ids - out:
        return out
    of, members = records.derived("restricted.household_index", household_index)  # once per backup
    hhs = {of[r] for r in ids - out if r in of}
    flagged = protected_residents(conn, m, key, {x for hh in hhs for x in members[hh]})
    bad = {hh for hh in hhs if any(x in flagged for x in members[hh])}
    return out | {r for r in ids if of.get(r) in bad}


def protected_for_publication(conn: Connection, m: str, key: DataKey | None, records: Records | None) -> set[str]:
    """Every evacuee of m that must never be published (PFIF): `protected_evacuees`, widened to the
    household key typed at intake and to registry households with a flagged member (module notes)."""
    base, pkey, _ids = _protected(conn, m, key, None)
    linked = {r.evacuee_id: str(r.resident_id) for r in _links(conn, m, None)
              if (r.resident_municipality or m) == m}
    newest: dict[str, Any] = {}
    for d in conn.execute(select(hub_decision.c.evacuee_id, hub_decision.c.decision, hub_decision.c.resident_id,
                                 hub_decision.c.resident_municipality).where(hub_decision.c.municipality_code == m)
                          .order_by(hub_decision.c.at, hub_decision.c.decision_id)).all():
        newest[d.evacuee_id] = d
    review = {eid: str(d.resident_id) for eid, d in newest.items()
              if d.decision == "review" and d.resident_id and (d.resident_municipality or m) == m}
    named = {**review, **linked}
    extra_res = household_protected_residents(conn, m, key, records, set(named.values()) | set(review.values()))
    out = base | {eid for eid, rid in named.items() if rid in extra_res}
    out |= {eid for eid, rid in review.items() if rid in extra_res}
    set_tenant(conn, m)
    by_key: dict[str, set[str]] = {}
    for eid, hk in conn.execute(select(hub_evacuee.c.evacuee_id, hub_evacuee.c.household_key).where(
            hub_evacuee.c.municipality_code == m, hub_evacuee.c.household_key.is_not(None))).all():
        if hk:
            by_key.setdefault(f"household:{hk}", set()).add(eid)
    for eid, pk in pkey.items():
        by_key.setdefault(f"person:{pk}", set()).add(eid)
    everyone = out | {e for g in by_key.values() for e in g}
    facts = household_facts(everyone, out, by_key.values())
    return {e for e, f in facts.items() if is_protected(f)}


def newest_records(conn: Connection, m: str, key: DataKey | None) -> Records | None:
    """m's newest registry backup, decrypted (cached by `sync.hub.registry.open_records`); None
    without the key or a backup (the rule then protects every link into a flagged town)."""
    from sync.hub import registry

    if key is None:
        return None
    snap = registry.latest_snapshot(conn, m)
    return registry.open_records(conn.engine, key, m, snap, conn=conn) if snap is not None else None


def protected_whole(conn: Connection, m: str, key: DataKey | None, records: Records | None = None) -> set[str]:
    """Every evacuee of m the one rule protects, household-wide (module notes): what 安否照会, the
    feed and every publication ask. Leaves the tenant at m."""
    try:
        if records is None:
            records = newest_records(conn, m, key)
        return protected_for_publication(conn, m, key, records)
    finally:
        set_tenant(conn, m)


__all__: Sequence[str] = ("care_protects", "holds_flags", "household_index", "household_protected_residents",
                          "protected_evacuees",
                          "protected_for_publication", "protected_residents", "protected_whole", "newest_records")
