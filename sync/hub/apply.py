"""Apply stored events into the hub-wide tables that show every shelter.

Rules, chosen so that arrival order between shelters matters as little as possible:

- ``stay.recorded``, ``match.decided``, ``certificate.*`` are append-only rows keyed by their
  own ids; they never conflict.  An evacuee's status follows the stay last in *hub order*: one
  laptop's stays in (epoch, seq) order whatever its clock said, and stays of different laptops
  by their time corrected with each laptop's measured clock offset (see :func:`_stay_order`).  Derived state (an evacuee's current status, a person's
  active link) is recomputed from *all* rows for the evacuees a batch touched, taking the
  latest by (time, id), so it ends the same whatever order batches arrived in.
- Person links are rows in ``hub_person_link``; a later decision revokes a link by setting
  ``revoked_at`` — links are never deleted and evacuees are never merged.
- ``evacuee.updated`` carries ``{"old", "new"}`` per field.  If the hub still shows ``old`` the
  edit is sequential and applied.  If it shows something else (two devices edited the same
  field without seeing each other), both values are kept in ``hub_evacuee_value``, a
  ``hub_review_item`` is opened, and the shown value is the later write by (time, event id).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from sync.events import EVACUEE_FIELDS, desired_link  # noqa: F401 - desired_link: apply.desired_link kept
from sync.hub.store import (
    WireEvent, bulk_insert, bulk_update, hub_certificate, hub_decision, hub_evacuee, hub_evacuee_value,
    hub_hq_record, hub_person_link, hub_review_item, hub_stay, hub_stream_order, in_, mark_withheld, new_row_id,
)

_JSON_FIELDS = ("care", "consents")
_REG_FIELDS = ("shelter_code", "external_key", "name", "name_kana", "birth_date_raw", "birth_date", "sex",
               "address", "phone", "household_key", "care", "consents", "registered_at")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _col_value(field: str, value: Any) -> Any:
    """hub_evacuee stores JSON fields as text and scalars as text."""
    if field in _JSON_FIELDS:
        return _dump(value if value is not None else {})
    if value is None:
        return None
    return value if isinstance(value, str) else _dump(value)


def _shown_value(field: str, stored: Any) -> Any:
    if field in _JSON_FIELDS:
        return json.loads(stored) if stored else {}
    return stored


def person_key(resident_id: str | None, municipality_code: str | None) -> str | None:
    """宛名番号 are unique within a municipality; prefix the code when the decision has one."""
    if not resident_id:
        return None
    return f"{municipality_code}:{resident_id}" if municipality_code else str(resident_id)


@dataclass
class Applied:
    count: int
    crossmatch_jobs: int = 0


def apply_events(conn: Connection, events: Sequence[WireEvent], *, now: datetime, municipality: str,
                 clock_offset: float = 0.0) -> Applied:
    """Apply one stream's newly gap-free events (in seq order) into the tables of its tenant.

    Afterwards, when other municipalities share their registries with this one, evacuees that
    may be their residents are queued for cross-town matching (:mod:`sync.hub.crossmatch`),
    and the homes' view of evacuees already found here is kept current.
    """
    from sync.hub import crossmatch  # local: crossmatch imports this module

    m = municipality
    by_type: dict[str, list[WireEvent]] = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
    registered = _registrations(conn, by_type.get("evacuee.registered", []), now, m)
    stayed = _stays(conn, by_type.get("stay.recorded", []), now, m, clock_offset)
    decided = _decisions(conn, by_type.get("match.decided", []), now, m)
    _certificates(conn, by_type.get("certificate.issued", []), by_type.get("certificate.voided", []), m)
    _hq_records(conn, by_type.get("hq.recorded", []), m)
    edits: list[tuple[WireEvent, str, dict[str, Any]]] = []
    for e in events:  # order-sensitive edits: applied in seq order (in memory), written once
        if e.type == "evacuee.updated":
            changes = e.data.get("changes") or {}
            if isinstance(changes, dict) and e.data.get("evacuee_id"):
                edits.append((e, str(e.data["evacuee_id"]), changes))
        elif e.type == "consent.changed" and e.data.get("evacuee_id"):
            edits.append((e, str(e.data["evacuee_id"]), {"consents": {"new": e.data.get("consents") or {}}}))
    _edits(conn, edits, now, m)
    _withhold(conn, events, m, registered)
    jobs = crossmatch.after_apply(conn, m, registered=registered, decided=decided,
                                  touched=stayed | {eid for _, eid, _ in edits} | set(decided), now=now)
    return Applied(len(events), jobs)


def _withhold(conn: Connection, events: Sequence[WireEvent], m: str, registered: Iterable[str] = ()) -> None:
    """Evacuees 閲覧制限 are withheld from every other shelter's feed from now on (sticky): those a
    shelter marks (``restricted`` on a registration, edit or decision) and, by the hub's one rule
    (:mod:`sync.hub.restricted`), every evacuee this batch touched that is protected — linked or
    pending review to a resident flagged in any backup of their town (this one or another), found
    protected by another town, damaged care flags — with the other registrations of the same person.
    Without the data key a link into a town that holds flagged residents withholds (fail closed)."""
    from sync.hub import registry
    from sync.hub.restricted import protected_whole

    ids = set()
    touched: set[str] = set()
    for e in events:
        d = e.data
        if d.get("evacuee_id") and e.type in ("evacuee.registered", "evacuee.updated", "match.decided",
                                              "consent.changed"):
            touched.add(str(d["evacuee_id"]))
        changes = d.get("changes") if isinstance(d.get("changes"), dict) else {}
        flag = d.get("restricted") is True or (isinstance(changes.get("restricted"), dict)
                                               and changes["restricted"].get("new") is True)
        care = d.get("care")
        if isinstance(care, dict) and care.get("restricted") is True:
            flag = True
        if flag and d.get("evacuee_id"):
            ids.add(str(d["evacuee_id"]))
    new_here = set(registered)
    if ids:
        mark_withheld(conn, m, ids, retract_except=new_here)
    if touched:  # household-wide: a child's registration must not tell where the flagged mother is
        more = protected_whole(conn, m, registry.data_key_of(conn.engine))
        mark_withheld(conn, m, more - ids, retract_except=new_here)


# ---- registrations ------------------------------------------------------------------------------------
def _registrations(conn: Connection, events: list[WireEvent], now: datetime, m: str) -> dict[str, str]:
    """Returns {evacuee_id: address as registered} of the registrations applied."""
    if not events:
        return {}
    ids = [str(e.data.get("evacuee_id")) for e in events if e.data.get("evacuee_id")]
    existing = {r[0]: r for r in conn.execute(
        select(hub_evacuee.c.evacuee_id, hub_evacuee.c.provenance).where(
            hub_evacuee.c.municipality_code == m, in_(conn, hub_evacuee.c.evacuee_id, ids))).all()}
    rows: dict[str, dict[str, Any]] = {}
    late: list[WireEvent] = []
    for e in events:
        d = e.data
        eid = d.get("evacuee_id")
        if not eid:
            continue
        if eid in existing or eid in rows:
            late.append(e)
            continue
        at = d.get("registered_at") or e.recorded_at
        rows[eid] = dict(
            municipality_code=m, evacuee_id=eid, device_id=e.device_id, registered=True,
            **{f: _col_value(f, d.get(f)) for f in _REG_FIELDS},
            provenance=_dump({f: [at, e.event_id] for f in _REG_FIELDS if f in d}),
            extra=_dump({k: v for k, v in d.items() if k not in _REG_FIELDS and k not in ("evacuee_id", "v")}),
            status="in_shelter", current_shelter_code=d.get("shelter_code"), updated_at=now)
    if rows:
        bulk_insert(conn, hub_evacuee, list(rows.values()))
    for e in late:
        _fill_stub(conn, e, now, m)
    return {str(e.data["evacuee_id"]): str(e.data.get("address") or "") for e in events if e.data.get("evacuee_id")}


def _fill_stub(conn: Connection, e: WireEvent, now: datetime, m: str) -> None:
    """A registration for an evacuee already known (stub from an early update, or re-registration):
    fill only the fields nobody has written yet."""
    d = e.data
    row = conn.execute(select(hub_evacuee).where(hub_evacuee.c.municipality_code == m,
                                                 hub_evacuee.c.evacuee_id == d["evacuee_id"])).mappings().first()
    if row is None:
        return
    prov = json.loads(row["provenance"] or "{}")
    at = d.get("registered_at") or e.recorded_at
    values: dict[str, Any] = {"registered": True, "updated_at": now}
    for f in _REG_FIELDS:
        if f in d and f not in prov:
            values[f] = _col_value(f, d.get(f))
            prov[f] = [at, e.event_id]
    if row["device_id"] is None:
        values["device_id"] = e.device_id
    values["provenance"] = _dump(prov)
    conn.execute(update(hub_evacuee).where(hub_evacuee.c.municipality_code == m,
                                           hub_evacuee.c.evacuee_id == d["evacuee_id"]).values(**values))


# ---- stays ---------------------------------------------------------------------------------------------
_STATUS = {"check_in": "in_shelter", "check_out": "left", "transfer": "transferred"}


def _parse_time(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _stay_order(conn: Connection, events: list[WireEvent], now: datetime, m: str, offset: float) -> dict[str, str]:
    """{event_id: order key} for stays: ``<hub time>|<epoch>|<seq>``.

    A laptop's clock may be days off (a power cut resets it), so its own times never order its
    own events: the hub time of each stay is the laptop's time plus the offset measured at this
    sync, never later than now (nothing happened after the hub received it), and never earlier
    than the stream's previous stay — so one laptop's stays keep their (epoch, seq) order, and a
    laptop two days behind still checks out after a check-in made elsewhere.
    """
    keys: dict[str, str] = {}
    last: dict[tuple[str, int], datetime] = {}
    for e in sorted(events, key=lambda e: (e.device_id, e.epoch, e.seq)):
        stream = (e.device_id, e.epoch)
        if stream not in last:
            held = conn.execute(select(hub_stream_order.c.last_at).where(
                hub_stream_order.c.municipality_code == m, hub_stream_order.c.device_id == e.device_id,
                hub_stream_order.c.epoch == e.epoch)).scalar()
            last[stream] = _parse_time(held) if held else datetime.min.replace(tzinfo=timezone.utc)
        laptop = _parse_time(e.data.get("at") or e.recorded_at) or _parse_time(e.recorded_at) or now
        at = max(min(laptop + timedelta(seconds=offset), now), last[stream])
        last[stream] = at
        keys[e.event_id] = f"{at.astimezone(timezone.utc).strftime(_KEY_TIME)}|{e.epoch:010d}|{e.seq:012d}"
    rows = [dict(municipality_code=m, device_id=d, epoch=ep, last_at=t.astimezone(timezone.utc).strftime(_KEY_TIME))
            for (d, ep), t in last.items()]
    bulk_insert(conn, hub_stream_order, rows)  # new streams
    bulk_update_stream_order(conn, m, rows)
    return keys


_KEY_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def bulk_update_stream_order(conn: Connection, m: str, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        conn.execute(update(hub_stream_order).where(
            hub_stream_order.c.municipality_code == m, hub_stream_order.c.device_id == r["device_id"],
            hub_stream_order.c.epoch == r["epoch"], hub_stream_order.c.last_at < r["last_at"])
            .values(last_at=r["last_at"]))


def _stays(conn: Connection, events: list[WireEvent], now: datetime, m: str, offset: float = 0.0) -> set[str]:
    """Append stays; move each evacuee's status to its latest stay in hub order (:func:`_stay_order`).

    The update is guarded (``last_stay_key < new key``), so applying stays in any order ends
    in the same status without reading the evacuee's whole stay history.  A stay for an
    evacuee the hub has not seen registered yet (another laptop's stream is behind) creates
    a stub row that carries the status until the registration fills it in.  ``at`` is kept as
    the laptop wrote it, for display.
    """
    rows = {}
    order: dict[str, str] = {}
    usable = [e for e in events if e.data.get("stay_id") and e.data.get("evacuee_id")]
    if usable:
        order = _stay_order(conn, usable, now, m, offset)
    for e in usable:
        d = e.data
        rows[d["stay_id"]] = dict(municipality_code=m, stay_id=d["stay_id"], evacuee_id=d["evacuee_id"],
                                  kind=str(d.get("kind")),
                                  shelter_code=d.get("shelter_code"), destination=d.get("destination"),
                                  at=str(d.get("at") or e.recorded_at), event_id=e.event_id, device_id=e.device_id)
    if not rows:
        return set()
    bulk_insert(conn, hub_stay, list(rows.values()))
    latest: dict[str, dict[str, Any]] = {}
    for r in rows.values():
        key = f"{order[r['event_id']]}|{r['stay_id']}"
        if r["evacuee_id"] not in latest or key > latest[r["evacuee_id"]]["last_stay_key"]:
            kind = r["kind"]
            latest[r["evacuee_id"]] = {
                "evacuee_id": r["evacuee_id"], "status": _STATUS.get(kind, kind), "last_stay_key": key,
                # shelter code only when the stay named one (else keep the registering shelter)
                "current_shelter_code": r["destination"] if kind == "transfer" else r["shelter_code"]}
    bulk_insert(conn, hub_evacuee, [dict(municipality_code=m, evacuee_id=eid, registered=False, provenance="{}",
                                         extra="{}", care="{}", consents="{}", updated_at=now) for eid in latest])
    bulk_update(conn, hub_evacuee, "evacuee_id", list(latest.values()),
                ["status", "last_stay_key", "current_shelter_code"], coalesce=("current_shelter_code",),
                guard="last_stay_key", municipality=m)
    return set(latest)


# ---- decisions and person links ------------------------------------------------------------------------
def _decisions(conn: Connection, events: list[WireEvent], now: datetime, m: str) -> dict[str, str]:
    """Returns {evacuee_id: the newest decision of this batch} (by time, then id)."""
    rows = {}
    for e in events:
        d = e.data
        if not d.get("decision_id") or not d.get("evacuee_id"):
            continue
        score = d.get("score")
        rows[d["decision_id"]] = dict(
            municipality_code=m, decision_id=d["decision_id"], evacuee_id=d["evacuee_id"],
            resident_id=d.get("resident_id"), resident_municipality=d.get("municipality_code"),
            person_key=person_key(d.get("resident_id"), d.get("municipality_code")),
            snapshot_as_of=d.get("snapshot_as_of"), decision=str(d.get("decision")),
            score=float(score) if isinstance(score, (int, float)) else None,
            reasons=d.get("reasons") if isinstance(d.get("reasons"), (str, type(None))) else _dump(d.get("reasons")),
            by_user=d.get("by_user"), at=str(d.get("at") or e.recorded_at), event_id=e.event_id, device_id=e.device_id)
    if not rows:
        return {}
    bulk_insert(conn, hub_decision, list(rows.values()))
    newest: dict[str, str] = {}
    for r in sorted(rows.values(), key=lambda r: (r["at"], r["decision_id"])):
        newest[r["evacuee_id"]] = r["decision"]
    relink(conn, set(newest), now, m)
    return newest


def relink(conn: Connection, evacuee_ids: Iterable[str], now: datetime, m: str) -> None:
    """Make each evacuee's active link match its decisions; changes are new rows + revocations."""
    ids = list(evacuee_ids)
    if not ids:
        return
    by_ev: dict[str, list[Any]] = {}
    for r in conn.execute(select(hub_decision.c.decision_id, hub_decision.c.evacuee_id, hub_decision.c.decision,
                                 hub_decision.c.person_key, hub_decision.c.resident_id,
                                 hub_decision.c.resident_municipality, hub_decision.c.at)
                          .where(hub_decision.c.municipality_code == m, in_(conn, hub_decision.c.evacuee_id, ids))).all():
        by_ev.setdefault(r.evacuee_id, []).append(r)
    active = {r.evacuee_id: r for r in conn.execute(
        select(hub_person_link.c.link_id, hub_person_link.c.evacuee_id, hub_person_link.c.person_key)
        .where(hub_person_link.c.municipality_code == m, in_(conn, hub_person_link.c.evacuee_id, ids),
               hub_person_link.c.revoked_at.is_(None))).all()}
    revoke: list[dict[str, Any]] = []
    insert: list[dict[str, Any]] = []
    for eid in ids:
        decs = sorted(by_ev.get(eid, []), key=lambda d: (d.at, d.decision_id))
        want = desired_link(decs)
        have = active.get(eid)
        if want is not None and have is not None and have.person_key == want.person_key:
            continue
        if have is not None:
            last = decs[-1].decision_id if decs else None
            revoke.append({"b_link": have.link_id, "revoked_at": now, "revoked_by_decision_id": last})
        if want is not None:
            insert.append(dict(municipality_code=m, link_id=new_row_id(), evacuee_id=eid, person_key=want.person_key,
                               resident_id=want.resident_id, resident_municipality=want.resident_municipality,
                               decision_id=want.decision_id, linked_at=now))
    if revoke:
        conn.execute(update(hub_person_link).where(hub_person_link.c.municipality_code == m,
                                                   hub_person_link.c.link_id == bindparam("b_link"))
                     .values(revoked_at=bindparam("revoked_at"),
                             revoked_by_decision_id=bindparam("revoked_by_decision_id")), revoke)
    if insert:
        bulk_insert(conn, hub_person_link, insert, on_conflict_nothing=False)


# ---- certificates --------------------------------------------------------------------------------------
def certificate_doc(raw: str | None) -> dict[str, Any]:
    """The ``hub_certificate.payload`` document, shared with the hub's certificate desk (app/)::

        {"v": 1, "origin": "laptop" | "hub",
         "cert": {kind, damage, cause, issued_by, manual, reissue_count, epoch, …  (+ for hub-issued:
                  head_name, head_address, location, members, manual_reason, identity, restricted, …)},
         "sealed": {"device_id": …, "blob": …}   laptop's printed content boxed to the hub (if sent),
         "history": [{"action": issue|reissue|void, "at", "by", "reason", "where", "event_id"}, …]}

    A row written before this shape (the raw payload of one event) reads as an empty laptop doc.
    """
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict) or "origin" not in doc:
        doc = {"v": 1, "origin": "laptop", "cert": {}, "history": []}
    doc.setdefault("cert", {})
    doc.setdefault("history", [])
    return doc


def _cert_history(doc: dict[str, Any], entry: dict[str, Any]) -> None:
    """Append once per event (re-applied events change nothing); kept in time order."""
    if entry.get("event_id") and any(h.get("event_id") == entry["event_id"] for h in doc["history"]):
        return
    doc["history"].append(entry)
    doc["history"].sort(key=lambda h: (str(h.get("at") or ""), str(h.get("event_id") or "")))


def _certificates(conn: Connection, issued: list[WireEvent], voided: list[WireEvent], m: str) -> None:
    """Laptops' certificates as the hub knows them: one row per number, its history from every event
    (issue, reissue, void — in any arrival order), void sticky (a late issue or reissue event never
    un-voids).  The hub desk adds its own reissues and voids to the same rows."""
    for e in sorted(issued + voided, key=lambda e: e.seq):
        d = e.data
        if not d.get("number"):
            continue
        number = str(d["number"])
        row = conn.execute(select(hub_certificate.c.status, hub_certificate.c.payload).where(
            hub_certificate.c.municipality_code == m, hub_certificate.c.number == number)).first()
        doc = certificate_doc(row[1] if row is not None else None)
        cert = doc["cert"]
        extra = d  # the laptop's `extra` keys (manual, epoch, reissue_count, sealed) travel at the top level
        if e.type == "certificate.issued":
            reissue = bool(d.get("reissue_of"))
            for k, v in (("kind", d.get("kind")), ("damage", d.get("damage") or ""), ("cause", d.get("cause")),
                         ("manual", bool(extra.get("manual"))), ("epoch", extra.get("epoch"))):
                if v is not None and (not reissue or k not in cert):
                    cert[k] = v
            if not reissue or "issued_by" not in cert:
                cert["issued_by"] = d.get("by_user") or cert.get("issued_by") or ""
            if isinstance(extra.get("reissue_count"), int):
                cert["reissue_count"] = max(int(cert.get("reissue_count") or 0), extra["reissue_count"])
            if isinstance(extra.get("sealed"), str) and (not reissue or "sealed" not in doc):
                doc["sealed"] = {"device_id": e.device_id, "blob": extra["sealed"]}  # the copy wins
            _cert_history(doc, {"action": "reissue" if reissue else "issue",
                                "at": e.recorded_at if reissue else (d.get("issued_at") or e.recorded_at),
                                "by": d.get("by_user") or "", "reason": "", "where": "laptop",
                                "device_id": e.device_id, "event_id": e.event_id})
            values = dict(kind=d.get("kind"), resident_id=d.get("resident_id"), household_id=d.get("household_id"),
                          device_id=e.device_id)
            if not reissue or row is None:
                values["issued_at"] = d.get("issued_at") or e.recorded_at
        else:
            _cert_history(doc, {"action": "void", "at": d.get("voided_at") or e.recorded_at,
                                "by": d.get("by_user") or "", "reason": d.get("reason") or "", "where": "laptop",
                                "device_id": e.device_id, "event_id": e.event_id})
            values = dict(status="voided", device_id=e.device_id) if row is None else dict(status="voided")
            if row is None or row[0] != "voided":  # the first void's time and reason stand
                values.update(voided_at=d.get("voided_at") or e.recorded_at, void_reason=d.get("reason"))
            for k in ("kind", "resident_id", "household_id"):
                if d.get(k) and row is None:
                    values[k] = d.get(k)
        values["payload"] = _dump(doc)
        if row is None:
            conn.execute(hub_certificate.insert().values(municipality_code=m, number=number,
                                                         **({"status": "issued"} | values)))
        else:
            conn.execute(update(hub_certificate).where(hub_certificate.c.municipality_code == m,
                                                       hub_certificate.c.number == number).values(**values))


# ---- HQ records ----------------------------------------------------------------------------------------
def _hq_records(conn: Connection, events: list[WireEvent], m: str) -> None:
    """Append-only rows keyed by their own record id: the safety list replays them by (at, id), so
    arrival order does not matter.  A record about another municipality's 宛名番号 (a laptop whose
    municipality_code differs from its stream's) is ignored rather than misfiled."""
    rows = []
    for e in events:
        d = e.data
        if not d.get("record_id") or not d.get("resident_id") or d.get("municipality_code") not in (None, "", m):
            continue
        rows.append(dict(municipality_code=m, record_id=str(d["record_id"]), resident_id=str(d["resident_id"]),
                         status=str(d.get("status")), method=d.get("method"), note=d.get("note"),
                         by_user=d.get("by_user"), at=str(d.get("at") or e.recorded_at),
                         device_id=e.device_id, event_id=e.event_id))
    if rows:
        bulk_insert(conn, hub_hq_record, rows)


# ---- field edits and conflicts -------------------------------------------------------------------------
_EDIT_COLS = [*EVACUEE_FIELDS, "provenance", "extra", "updated_at"]


def _edits(conn: Connection, edits: list[tuple[WireEvent, str, dict[str, Any]]], now: datetime, m: str) -> None:
    """Apply field edits in seq order against in-memory copies of the rows, then write once."""
    if not edits:
        return
    ids = list(dict.fromkeys(eid for _, eid, _ in edits))
    rows = {r["evacuee_id"]: dict(r) for r in conn.execute(
        select(hub_evacuee).where(hub_evacuee.c.municipality_code == m,
                                  in_(conn, hub_evacuee.c.evacuee_id, ids))).mappings()}
    stubs = [dict(municipality_code=m, evacuee_id=eid, registered=False, provenance="{}", extra="{}", care="{}",
                  consents="{}", updated_at=now) for eid in ids if eid not in rows]
    if stubs:  # edit arrived before the registration (another stream): keep a stub
        bulk_insert(conn, hub_evacuee, stubs, on_conflict_nothing=False)
        for st in stubs:
            rows[st["evacuee_id"]] = {c.name: None for c in hub_evacuee.c} | {"withheld": False} | st
    state: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    history: list[dict[str, Any]] = []
    for e, eid, changes in edits:
        row = rows[eid]
        if eid not in state:
            state[eid] = (json.loads(row["provenance"] or "{}"), json.loads(row["extra"] or "{}"))
        prov, extra = state[eid]
        at = str(e.data.get("at") or e.recorded_at)
        for fname, change in changes.items():
            if not isinstance(change, dict) or "new" not in change:
                continue
            new = change["new"]
            known = fname in EVACUEE_FIELDS
            shown = _shown_value(fname, row[fname]) if known else extra.get(fname)
            conflict = fname in prov and "old" in change and shown != change["old"] and shown != new
            history.append(dict(municipality_code=m, value_id=new_row_id(), evacuee_id=eid, field=fname,
                                old=_dump(change.get("old")), new=_dump(new),
                                conflict=conflict, event_id=e.event_id, device_id=e.device_id, at=at))
            take = True
            if conflict:
                held_at, held_id = prov.get(fname, ["", ""])
                _open_review(conn, m, eid, fname, [
                    {"value": shown, "event_id": held_id, "at": held_at},
                    {"value": new, "event_id": e.event_id, "device_id": e.device_id, "at": at}], now)
                take = (at, e.event_id) > (held_at, held_id)
            if take:
                prov[fname] = [at, e.event_id]
                if known:
                    row[fname] = _col_value(fname, new)
                else:
                    extra[fname] = new
    if history:
        bulk_insert(conn, hub_evacuee_value, history, on_conflict_nothing=False)
    out = []
    for eid, (prov, extra) in state.items():
        row = rows[eid]
        row.update(provenance=_dump(prov), extra=_dump(extra), updated_at=now)
        out.append(row)
    bulk_update(conn, hub_evacuee, "evacuee_id", out, _EDIT_COLS, municipality=m)


def _open_review(conn: Connection, m: str, evacuee_id: str, fname: str, candidates: list[dict[str, Any]],
                 now: datetime) -> None:
    """One open review item per (evacuee, field); later conflicting values join it."""
    item = conn.execute(select(hub_review_item.c.item_id, hub_review_item.c.candidates).where(
        hub_review_item.c.municipality_code == m,
        hub_review_item.c.kind == "field_conflict", hub_review_item.c.evacuee_id == evacuee_id,
        hub_review_item.c.field == fname, hub_review_item.c.status == "open")).first()
    if item is None:
        conn.execute(hub_review_item.insert().values(municipality_code=m, item_id=new_row_id(), kind="field_conflict",
                                                     evacuee_id=evacuee_id, field=fname,
                                                     status="open", candidates=_dump(candidates),
                                                     created_at=now, updated_at=now))
        return
    have = json.loads(item[1])
    seen = {c.get("event_id") for c in have}
    merged = have + [c for c in candidates if c.get("event_id") not in seen]
    conn.execute(update(hub_review_item).where(hub_review_item.c.municipality_code == m,
                                               hub_review_item.c.item_id == item[0])
                 .values(candidates=_dump(merged), updated_at=now))
