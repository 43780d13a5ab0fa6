"""The certificate desk at the hub: り災証明書 / 被災証明書 issued at the data center (市役所の窓口).

Plain functions for the JSON routes (app/api/hub/certificates.py) and the CLI
(`anpi hub certificate …`); every one works inside one municipality (tenant) and writes its rows
and its hub audit entry (sync.hub.audit) in one transaction.  The rules and the paper are the
shelter's own, written once (app.services.certificate_rules and the flows of
app.services.certificate_desk); this module is the hub's store for them (`HubCertificates`) and the
hub's entry points, so a certificate checks and prints the same at either desk.

Rows live in ``hub_certificate`` (keyed (municipality_code, number)); its ``payload`` column holds
the document described in `sync.hub.apply.certificate_doc` (content, history).  Laptops'
certificates arrive there from their certificate.issued / certificate.voided events; the hub desk
lists them beside its own and may reprint, reissue or void them too.  A void or reissue of a
laptop's certificate also writes a hub notice (``certificate.voided`` / ``certificate.reissued``:
number, reason, at, by, the issuing device, the reissue count) to the municipality's feed, so the
laptop that issued it shows it and refuses to print a void one (app.services.certificates); a later
event from that laptop is recorded in the history but never un-voids the hub's row.  Reprinting needs the content the
laptop sealed to the hub in its event (laptops enrolled when they issued); otherwise 409.

**Who the hub issues to.**  A resident of the municipality's newest registry backup at the hub,
with the household (世帯番号 → members, 世帯主 first) from that backup.  The applicant must be
tied to the registry the way the shelter requires: a current auto/confirmed link of an evacuee to
the resident (``hub_person_link`` from any of the town's shelters, or ``hub_cross_link`` when HQ or
the matcher linked the resident found at another town's shelter), or the desk checked an ID in
person (``in_person``).  At the city hall most applicants never stayed in a shelter, so the ID
check is the usual path; refusing everyone without a shelter link would send them away, and
issuing without any check would let anyone obtain a household's certificate.  People the
registry does not know take the manual path (手動, marked on paper and in the row).

**Numbers** never collide with a laptop's, without either asking the other::

    R-U7K3QX-075469-000001
    │ │      │      └ per-municipality sequence (hub_counter "certificate.<kind>", bumped under the
    │ │      │        tenant's write lock `hub_lock`, in the certificate's own transaction)
    │ │      └ the municipality (全国地方公共団体コード): unique across tenants of one hub too
    │ └ "U" + 5 Crockford-base32 characters of SHA-256(hub id).  Laptops' prefixes are 6 characters
    │   of Crockford base32, which has no U (short_device_id), so no laptop can ever hold this prefix
    └ R = り災証明書, H = 被災証明書

**閲覧制限 (DV等支援措置)** — the shelter's rule, kept at the hub: a household with a flagged member
is issued, reissued and printed only by ``hq`` or ``admin`` users (the paper carries its address);
a ``desk`` user is refused (403) and sees such certificates in lists and details with the address,
location, issuing shelter and device and identity note masked (（閲覧制限）), and the list's text
search never matches their address.  Voiding discloses nothing and stays open to the desk.  The flag
is the hub's one rule (`sync.hub.restricted`, see `restricted_numbers`): any backup of the
municipality, fail-closed without the data key (and remembered on certificates the hub issued).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from app.config import cert_issuer_for
from app.services import certificate_desk as desk, certificate_rules as certs
from app.services.certificate_desk import DeskHousehold, Issued
from app.services.errors import InvalidInput, NotFound
from sync import crypto
from sync.errors import DataKeyError, RegistryError
from sync.hub import audit, registry, restricted, store
from sync.hub.apply import certificate_doc
from sync.hub.hq import parse_time
from sync.hub.registry import DataKey
from sync.hub.store import (
    hub_certificate, hub_counter, hub_cross_link, hub_decision, hub_device, hub_lock, hub_person_link,
    resolve_municipality, set_tenant, utcnow,
)

HUB_MARK = "U"  # not a Crockford-base32 digit: a laptop's short id can never contain it
MASKED = "（閲覧制限）"
STATUSES = ("issued", "void")


# ---- the certificate as the desk sees it ---------------------------------------------------------
@dataclass
class HubCertificate:
    """One row of hub_certificate with its content; has every attribute the PDF renderer reads."""

    number: str
    kind: str
    status: str  # issued | void
    origin: str  # hub | laptop
    resident_id: str = ""
    household_id: str = ""
    head_address: str = ""
    head_name: str = ""
    cause: str = ""
    location: str = ""
    damage: str = ""
    members: list[dict[str, Any]] = field(default_factory=list)
    manual: bool = False
    manual_reason: str = ""
    identity: str = ""
    identity_note: str = ""
    issued_at: datetime = field(default_factory=utcnow)
    issued_by: str = ""
    reissue_count: int = 0
    void_reason: str = ""
    voided_at: Optional[str] = None
    device_id: Optional[str] = None
    shelter_name: Optional[str] = None
    content_known: bool = True  # False: a laptop's certificate whose printed content the hub never received
    restricted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def reissued_at(self) -> Optional[datetime]:
        at = [h.get("at") for h in self.history if h.get("action") == "reissue"]
        return _dt(at[-1]) if at else None

    def as_dict(self, *, reveal_restricted: bool = True, with_history: bool = False) -> dict[str, Any]:
        """The certificate for a JSON answer. A 閲覧制限 one, for a caller who may not see it, masks
        whatever tells where the household is or was found: the address and location, the shelter
        and device that issued it, and the identity note (which names another town's shelter when
        the applicant was matched there); history entries lose their device id."""
        hide = self.restricted and not reveal_restricted

        def masked(value: Any) -> Any:
            return (MASKED if value else value) if hide else value

        out = {
            "number": self.number, "kind": self.kind, "kind_ja": certs.KIND_JA.get(self.kind, self.kind),
            "status": self.status, "status_ja": certs.STATUS_JA.get(self.status, self.status),
            "origin": self.origin, "device_id": None if hide else self.device_id,
            "shelter_name": masked(self.shelter_name),
            "resident_id": self.resident_id, "household_id": self.household_id, "head_name": self.head_name,
            "head_address": masked(self.head_address),
            "cause": self.cause, "location": masked(self.location),
            "damage": self.damage, "damage_ja": certs.DAMAGE_JA.get(self.damage, ""), "members": self.members,
            "manual": self.manual, "manual_reason": self.manual_reason, "identity": self.identity,
            "identity_ja": certs.IDENTITY_JA.get(self.identity, self.identity),
            "identity_note": masked(self.identity_note),
            "issued_at": self.issued_at.isoformat(timespec="seconds"), "issued_by": self.issued_by,
            "reissue_count": self.reissue_count, "void_reason": self.void_reason, "voided_at": self.voided_at,
            "content_known": self.content_known, "restricted": self.restricted,
        }
        if with_history:
            out["history"] = [{k: v for k, v in h.items() if not (hide and k == "device_id")} for h in self.history]
        return out


def _dt(text: Any) -> datetime:
    """A stored time, or the epoch when there is none (sorts first)."""
    return parse_time(text) or datetime(1970, 1, 1, tzinfo=timezone.utc)


def actor_of(user: Any) -> str:
    """How the hub audit log and the history name a person (an HqUser, or a CLI operator's string)."""
    if isinstance(user, str):
        return user or "hub"
    return f"{getattr(user, 'role', 'hq')}:{getattr(user, 'name', '')}"


# ---- numbers ---------------------------------------------------------------------------------------
def hub_prefix(engine: Engine) -> str:
    """'U' + 5 characters of the hub's short id (see module docstring)."""
    return HUB_MARK + certs.short_device_id(store.hub_identity(engine).hub_id)[:5]


_KIND_LETTER = {"risai": "R", "hisai": "H"}


def _next_number(conn: Connection, m: str, kind: str, prefix: str) -> str:
    """Bump the municipality's counter (the caller holds `hub_lock`, so writers are serialised; a
    rolled-back issue gives its number back)."""
    name = f"certificate.{kind}"
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(hub_counter)
    conn.execute(ins.values(municipality_code=m, name=name, value=0).on_conflict_do_nothing())
    seq = int(conn.execute(update(hub_counter).where(hub_counter.c.municipality_code == m, hub_counter.c.name == name)
                           .values(value=hub_counter.c.value + 1).returning(hub_counter.c.value)).scalar_one())
    return f"{_KIND_LETTER[kind]}-{prefix}-{m}-{seq:06d}"


# ---- the registry backup -------------------------------------------------------------------------
def _need_key(key: Optional[DataKey]) -> DataKey:
    if key is None:
        raise DataKeyError("the hub has no data key configured: the registry backup cannot be read")
    return key


def _records(engine: Engine, key: DataKey, m: str) -> registry.Records:
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, m)
    if snap is None:
        raise RegistryError(f"no registry backup for municipality {m} at the hub yet "
                            "(anpi hub registry import FILE --municipality CODE)")
    return registry.open_records(engine, key, m, snap)


def restricted_numbers(engine: Engine, key: Optional[DataKey], m: str, certificates: Iterable["HubCertificate"]) -> set[str]:
    """Numbers of the certificates whose household is under 閲覧制限, by the hub's one rule
    (`sync.hub.restricted.protected_residents`): the flag the hub remembered when it issued it, or
    the applicant or a member flagged in *any* backup of the municipality, or the household (世帯番号,
    in the newest backup) holding a member flagged in any backup. Laptops' sealed content carries
    no flag, so this is how theirs are known. Without the data key, a municipality whose backups flag
    anyone has every registry-based certificate treated as restricted (fail closed); the manual path
    (no 宛名番号) is not tied to the registry."""
    certificates = list(certificates)
    out = {c.number for c in certificates if c.restricted}
    tied = [c for c in certificates if c.number not in out and not c.manual
            and (c.resident_id or c.household_id or any(x.get("resident_id") for x in c.members))]
    if not tied:
        return out
    records: Optional[registry.Records] = None
    if key is not None:
        try:
            records = _records(engine, key, m)
        except RegistryError:
            records = None
    members: dict[str, list[str]] = restricted.household_index(records)[1] if records is not None else {}

    def rids(c: HubCertificate) -> set[str]:
        own = {c.resident_id} | {str(x.get("resident_id") or "") for x in c.members}
        return {r for r in own | set(members.get(c.household_id, ())) if r}

    with engine.connect() as conn:
        set_tenant(conn, m)
        if key is None:
            return out | ({c.number for c in tied} if restricted.holds_flags(conn, m) else set())
        flagged = restricted.protected_residents(conn, m, key, {r for c in tied for r in rids(c)})
    return out | {c.number for c in tied if rids(c) & flagged}


@dataclass
class HubHousehold:
    snapshot_id: str
    as_of: str
    applicant: Any
    head: Any
    head_found: bool
    members: list[Any]
    restricted: bool


def household(engine: Engine, key: Optional[DataKey], municipality: Optional[str], resident_id: str) -> HubHousehold:
    """The applicant's household in the municipality's newest registry backup (same rules as the shelter)."""
    rid = (resident_id or "").strip() if isinstance(resident_id, str) else ""
    if not rid:
        raise InvalidInput("a resident id (宛名番号) is needed", "宛名番号を指定してください", "resident_id")
    m = _municipality(engine, municipality)
    rec = _records(engine, _need_key(key), m)
    row = rec.by_id(rid)
    if row is None:
        raise NotFound(f"resident {rid} is not in the newest registry backup ({rec.as_of})",
                       f"宛名番号 {rid} は住民基本台帳（{rec.as_of} 時点）にありません")
    applicant = SimpleNamespace(**rec.as_dict(row))
    if applicant.household_id:
        hi = rec.fields.index("household_id")
        members = [applicant if r is row else SimpleNamespace(**rec.as_dict(r))
                   for r in rec.rows if r[hi] == applicant.household_id]  # registry order
    else:
        members = [applicant]
    head, head_found, members = certs.order_household(applicant, members)
    flagged = any(bool(x.restricted) for x in members)
    if not flagged:  # flagged in an older backup counts too (the hub's one rule)
        with engine.connect() as conn:
            flagged = bool(restricted.protected_residents(conn, m, key, {str(x.resident_id) for x in members}))
    return HubHousehold(rec.snapshot_id, rec.as_of, applicant, head, head_found, members, flagged)


def _link(conn: Connection, m: str, rid: str) -> tuple[Optional[str], Optional[str], str]:
    """(decision, evacuee_id, how) of the current link tying an evacuee to resident ``rid`` — from the
    town's own shelters (hub_person_link + its decision) or another town's (hub_cross_link); confirmed
    links first."""
    set_tenant(conn, m)
    found: list[tuple[str, str, str]] = []
    q = (select(hub_decision.c.decision, hub_person_link.c.evacuee_id)
         .join(hub_decision, (hub_decision.c.municipality_code == hub_person_link.c.municipality_code)
               & (hub_decision.c.decision_id == hub_person_link.c.decision_id))
         .where(hub_person_link.c.municipality_code == m, hub_person_link.c.resident_id == rid,
                hub_person_link.c.revoked_at.is_(None),
                hub_person_link.c.resident_municipality.is_(None) | (hub_person_link.c.resident_municipality == m)))
    found += [(str(d), str(e), "shelter") for d, e in conn.execute(q).all()]
    q2 = select(hub_cross_link.c.decision, hub_cross_link.c.evacuee_id, hub_cross_link.c.host_code).where(
        hub_cross_link.c.municipality_code == m, hub_cross_link.c.resident_id == rid,
        hub_cross_link.c.linked.is_(True))
    found += [(str(d), str(e), f"cross-town:{h}") for d, e, h in conn.execute(q2).all()]
    found = [f for f in found if f[0] in ("confirmed", "auto")]
    found.sort(key=lambda f: f[0] != "confirmed")
    return found[0] if found else (None, None, "")


def _municipality(engine: Engine, municipality: Optional[str]) -> str:
    with engine.connect() as conn:
        return resolve_municipality(conn, municipality)


# ---- reading rows ----------------------------------------------------------------------------------
class _Reader:
    """Turns hub_certificate rows into HubCertificates: opens laptops' sealed content (hub box key ×
    the device's key), names their shelters, applies the 閲覧制限 index."""

    def __init__(self, engine: Engine, key: Optional[DataKey], m: str) -> None:
        self.engine, self.key, self.m = engine, key, m
        self._identity: Any = None
        with engine.connect() as conn:
            set_tenant(conn, m)
            self.devices = {r[0]: (r[1], r[2] or r[3]) for r in conn.execute(select(
                hub_device.c.device_id, hub_device.c.public_key, hub_device.c.shelter_name, hub_device.c.name).where(
                hub_device.c.municipality_code == m, hub_device.c.device_id.is_not(None))).all()}

    def _open(self, sealed: Any) -> Optional[dict[str, Any]]:
        if not isinstance(sealed, dict) or not sealed.get("blob"):
            return None
        dev = self.devices.get(str(sealed.get("device_id") or ""))
        if dev is None or not dev[0]:
            return None
        if self._identity is None:
            self._identity = store.hub_identity(self.engine)
        try:
            plain = crypto.hub_box(self._identity.box_key, dev[0]).decrypt(crypto.b64d(sealed["blob"]))
            doc = json.loads(plain)
        except Exception:  # noqa: BLE001 - damaged or foreign: the content stays unknown, never a crash
            return None
        return doc if isinstance(doc, dict) else None

    def build(self, row: Any) -> HubCertificate:
        doc = certificate_doc(row["payload"])
        c = dict(doc["cert"])
        known = doc.get("origin") == "hub"
        if not known:
            opened = self._open(doc.get("sealed"))
            if opened is not None:
                c.update({k: opened[k] for k in certs.PRINTED_FIELDS if k in opened})
                known = True
        members = [dict(x) for x in c.get("members") or [] if isinstance(x, dict)]
        cert = HubCertificate(
            number=row["number"], kind=str(row["kind"] or c.get("kind") or ""),
            status="void" if row["status"] in ("voided", "void") else "issued", origin=str(doc.get("origin")),
            resident_id=row["resident_id"] or "", household_id=row["household_id"] or "",
            head_address=str(c.get("head_address") or ""), head_name=str(c.get("head_name") or ""),
            cause=str(c.get("cause") or ""), location=str(c.get("location") or ""), damage=str(c.get("damage") or ""),
            members=members, manual=bool(c.get("manual")), manual_reason=str(c.get("manual_reason") or ""),
            identity=str(c.get("identity") or ""), identity_note=str(c.get("identity_note") or ""),
            issued_at=_dt(row["issued_at"]), issued_by=str(c.get("issued_by") or ""),
            reissue_count=int(c.get("reissue_count") or 0), void_reason=row["void_reason"] or "",
            voided_at=row["voided_at"], device_id=row["device_id"],
            shelter_name=self.devices.get(row["device_id"] or "", (None, None))[1], content_known=known,
            history=list(doc.get("history") or []), restricted=c.get("restricted") is True)
        return cert

    def build_all(self, rows: Iterable[Any]) -> list[HubCertificate]:
        """The certificates of these rows, each with its 閲覧制限 flag (`restricted_numbers`)."""
        out = [self.build(r) for r in rows]
        flagged = restricted_numbers(self.engine, self.key, self.m, out)
        for c in out:
            c.restricted = c.number in flagged
        return out


def _row(conn: Connection, m: str, number: str) -> Any:
    set_tenant(conn, m)
    return conn.execute(select(hub_certificate).where(hub_certificate.c.municipality_code == m,
                                                      hub_certificate.c.number == number)).mappings().first()



def _not_found(number: str) -> NotFound:
    # another municipality's number answers exactly like one that does not exist
    return NotFound(f"no certificate numbered {number!r}", f"整理番号 {number} の証明書はありません")


def parse_members(value: Any) -> list[dict[str, Any]]:
    """Members of a manual certificate from JSON: a list of {name, relationship, birth_date} or text
    lines `氏名, 続柄, 生年月日` (as the shelter's form takes them)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return certs.parse_members(value)
    if not isinstance(value, list):
        raise InvalidInput("members must be a list", "世帯構成員は一覧で指定してください", "members")
    lines = []
    for n, x in enumerate(value, start=1):
        if isinstance(x, str):
            lines.append(x)
        elif isinstance(x, dict) and all(isinstance(x.get(k, ""), str) for k in ("name", "relationship", "birth_date")):
            lines.append(", ".join([x.get("name", "").replace(",", " "), x.get("relationship", ""),
                                    x.get("birth_date", "")]).rstrip(", "))
            if not x.get("name", "").strip():
                raise InvalidInput(f"members[{n}]: the name is empty", f"世帯構成員の{n}人目: 氏名がありません", "members")
        else:
            raise InvalidInput(f"members[{n}] must be an object with name, relationship, birth_date",
                               f"世帯構成員の{n}人目の形式が正しくありません", "members")
    return certs.parse_members("\n".join(lines))


# ---- reading -----------------------------------------------------------------------------------------
def list_certificates(engine: Engine, key: Optional[DataKey], municipality: Optional[str], *, kind: str = "",
                      status: str = "", resident: str = "", q: str = "", manual: Optional[bool] = None,
                      origin: str = "", limit: int = 500, by: Any = "hub",
                      reveal_restricted: bool = True) -> list[HubCertificate]:
    """The municipality's certificates, the laptops' and the hub's, newest first (audited).

    ``q`` matches the number, the head's name, a 宛名番号 / 世帯番号 — and the address and location
    only of certificates the caller may see in full: for a caller without `reveal_restricted` a
    閲覧制限 certificate's address is never matched (the answer would tell where the household is)."""
    m = _municipality(engine, municipality)
    if kind:
        kind = certs.parse_kind(kind)
    status = certs.list_status(status)
    if origin and origin not in ("hub", "laptop"):
        raise InvalidInput(f"unknown origin {origin!r} (hub or laptop)", "発行元が正しくありません", "origin")
    reader = _Reader(engine, key, m)
    with engine.connect() as conn:
        set_tenant(conn, m)
        query = select(hub_certificate).where(hub_certificate.c.municipality_code == m)
        if kind:
            query = query.where(hub_certificate.c.kind == kind)
        if status:
            query = query.where(hub_certificate.c.status == ("issued" if status == "issued" else "voided"))
        rows = conn.execute(query).mappings().all()
    out = reader.build_all(rows)
    resident = (resident or "").strip()
    if resident:
        out = [c for c in out if resident in (c.resident_id, c.household_id)
               or any(x.get("resident_id") == resident for x in c.members)]
    text = (q or "").strip()
    if text:
        up = text.upper()
        out = [c for c in out if up in c.number or text in c.head_name
               or ((reveal_restricted or not c.restricted) and (text in c.head_address or text in c.location))
               or text in (c.resident_id, c.household_id)]
    if manual is not None:
        out = [c for c in out if c.manual == manual]
    if origin:
        out = [c for c in out if c.origin == origin]
    out.sort(key=lambda c: (c.issued_at, c.number), reverse=True)
    out = out[:max(1, min(int(limit), 5000))]
    if by is not None:
        with engine.begin() as conn:
            audit.record(conn, m, actor=actor_of(by), action="certificate.listed", detail={
                "kind": kind, "status": status, "resident": resident, "q": text, "numbers": [c.number for c in out]})
    return out


def get(engine: Engine, key: Optional[DataKey], municipality: Optional[str], number: Any, *,
        by: Any = "hub") -> HubCertificate:
    """One certificate with its history (audited when ``by`` is given)."""
    number = certs.clean_number(number)
    m = _municipality(engine, municipality)
    with engine.connect() as conn:
        row = _row(conn, m, number)
    if row is None:
        raise _not_found(number)
    cert = _Reader(engine, key, m).build_all([row])[0]
    if by is not None:
        with engine.begin() as conn:
            audit.record(conn, m, actor=actor_of(by), action="certificate.viewed", detail={"number": number})
    return cert


#: hub action → type of the notice the issuing laptop pulls
NOTICE_TYPES = {"certificate.voided": "certificate.voided", "certificate.reissued": "certificate.reissued"}


def _laptop_notice(row: Any, doc: dict[str, Any], action: str) -> Optional[dict[str, Any]]:
    """The feed notice telling the laptop that issued the certificate what the hub just did to it
    (the history entry ``mutate`` appended), or None for the hub's own certificates.

    Payload: ``number``, ``reason``, ``at``, ``by`` (as in the hub's history), ``device_id`` of the
    issuing laptop (so a laptop never applies it to a number of its own that only looks alike) and,
    for a reissue, ``reissue_count`` (the laptop's next reissue counts on from it)."""
    if doc.get("origin") == "hub" or action not in NOTICE_TYPES or not doc.get("history"):
        return None
    last = doc["history"][-1]
    payload: dict[str, Any] = {"number": row["number"], "reason": last.get("reason") or "", "at": last.get("at"),
                               "by": last.get("by") or "", "device_id": row["device_id"], "kind": row["kind"]}
    if action == "certificate.reissued":
        payload["reissue_count"] = int(doc["cert"].get("reissue_count") or 0)
    return {"type": NOTICE_TYPES[action], "payload": payload}


def issuer_for(engine: Engine, m: str) -> certs.Issuer:
    """Who certifies on the hub's paper: ANPI_CERT_ISSUER_<code> (e.g. 双葉町長　山田太郎) when set, else
    the municipality's 市町村長 by title (双葉町長) — one hub serves many towns, so the shelter's single
    ANPI_CERT_ISSUER cannot name them all."""
    named = cert_issuer_for(m)
    if named:
        return certs.Issuer(named)
    with engine.connect() as conn:
        name = store.municipality_names(conn).get(m)
    return certs.Issuer(f"{name}長") if name else certs.issuer_from_env()


# ---- the hub's store for the desk's rules ------------------------------------------------------------
class HubCertificates:
    """`certificate_desk.CertificateStore` over one municipality's rows at the hub. Each write is
    one transaction under the tenant's write lock (`hub_lock`): number, row, history, the notice to
    the laptop that issued it, and the hub audit entry (sync.hub.audit) together or not at all."""

    def __init__(self, engine: Engine, key: Optional[DataKey], municipality: Optional[str]) -> None:
        self.engine, self.key = engine, key
        self.m = _municipality(engine, municipality)
        self._scope: dict[str, tuple[str, list[str]]] = {}  # resident id → (世帯番号, members' 宛名番号)

    def household(self, resident_id: str) -> DeskHousehold:
        hh = household(self.engine, self.key, self.m, resident_id)
        rid = str(hh.applicant.resident_id)
        self._scope[rid] = (hh.applicant.household_id or "", [str(x.resident_id) for x in hh.members])
        with self.engine.connect() as conn:
            decision, evacuee_id, how = _link(conn, self.m, rid)
        note = f"（他市町村の避難所で照合: {how.split(':', 1)[1]}）" if how.startswith("cross-town") else ""
        return DeskHousehold(hh.applicant, hh.head, hh.head_found, hh.members, hh.restricted, hh.snapshot_id,
                             link_decision=decision, link_evacuee=evacuee_id, link_note=note,
                             extra={"snapshot_as_of": hh.as_of, "restricted": hh.restricted})

    def _issued(self, conn: Connection, resident_id: str) -> list[Issued]:
        """The household's registry-based certificates (kind, status, cause, number), as stored now."""
        hh, rids = self._scope.get(resident_id, ("", [resident_id]))
        conds = [hub_certificate.c.resident_id.in_(rids)] if rids else []
        if hh:
            conds.append(hub_certificate.c.household_id == hh)
        if not conds:
            return []
        rows = conn.execute(select(hub_certificate.c.number, hub_certificate.c.kind, hub_certificate.c.status,
                                   hub_certificate.c.payload).where(
            hub_certificate.c.municipality_code == self.m, or_(*conds))).all()
        docs = [(r, certificate_doc(r[3])["cert"]) for r in rows]
        return [(r[1], "issued" if r[2] == "issued" else "void", str(c.get("cause")), r[0])
                for r, c in docs if not c.get("manual")]

    def add(self, content: dict[str, Any], *, resident_id: str, household_id: str, subjects: list[str], by: Any,
            check: Optional[Callable[[Iterable[Issued]], None]]) -> HubCertificate:
        m, who, prefix = self.m, actor_of(by), hub_prefix(self.engine)
        with self.engine.begin() as conn:
            hub_lock(conn, m)
            if check is not None:
                check(self._issued(conn, resident_id))
            number = _next_number(conn, m, content["kind"], prefix)
            now = utcnow().isoformat()
            doc = {"v": 1, "origin": "hub", "cert": {**content, "issued_by": who, "reissue_count": 0},
                   "history": [{"action": "issue", "at": now, "by": who, "reason": "", "where": "hub"}]}
            conn.execute(hub_certificate.insert().values(
                municipality_code=m, number=number, kind=content["kind"], resident_id=resident_id,
                household_id=household_id, status="issued", issued_at=now, device_id=None,
                payload=json.dumps(doc, ensure_ascii=False)))
            audit.record(conn, m, actor=who, action="certificate.issued", detail={
                "number": number, "kind": content["kind"], "damage": content.get("damage"),
                "manual": bool(content.get("manual")), "identity": content.get("identity"), "subjects": subjects})
        return self.shown(number)

    def shown(self, number: str) -> HubCertificate:
        return get(self.engine, self.key, self.m, number, by=None)

    def reissued(self, number: str, *, reason: str, by: Any, check: Callable[[str, str], None]) -> HubCertificate:
        who = actor_of(by)

        def mutate(row: Any, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            check(_status(row), row["void_reason"] or "")  # voided meanwhile
            count = int(doc["cert"].get("reissue_count") or 0) + 1
            doc["cert"]["reissue_count"] = count
            doc["history"].append({"action": "reissue", "at": utcnow().isoformat(), "by": who, "reason": reason,
                                   "where": "hub"})
            return {}, {"reissue_count": count, "reason": reason}

        return self._change(number, who, "certificate.reissued", mutate)

    def voided(self, number: str, *, reason: str, by: Any, check: Callable[[str, str], None]) -> HubCertificate:
        who, now = actor_of(by), utcnow().isoformat()

        def mutate(row: Any, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            check(_status(row), row["void_reason"] or "")
            doc["history"].append({"action": "void", "at": now, "by": who, "reason": reason, "where": "hub"})
            return {"status": "voided", "voided_at": now, "void_reason": reason}, {"reason": reason}

        return self._change(number, who, "certificate.voided", mutate)

    def _change(self, number: str, who: str, action: str, mutate: Any) -> HubCertificate:
        """Re-read the row under the tenant's write lock, let ``mutate(row, doc)`` change it (returning
        (column values, audit detail)), write it back, tell the issuing laptop and audit it."""
        m = self.m
        with self.engine.begin() as conn:
            hub_lock(conn, m)
            row = _row(conn, m, number)
            if row is None:
                raise _not_found(number)
            doc = certificate_doc(row["payload"])
            values, detail = mutate(row, doc)
            conn.execute(update(hub_certificate).where(hub_certificate.c.municipality_code == m,
                                                       hub_certificate.c.number == number)
                         .values(payload=json.dumps(doc, ensure_ascii=False), **values))
            notice = _laptop_notice(row, doc, action)
            if notice is not None:
                store.insert_notices(conn, m, [notice])
            audit.record(conn, m, actor=who, action=action,
                         detail={"number": number, "origin": doc.get("origin"), **detail})
        return self.shown(number)

    def restricted(self, cert: Any) -> bool:
        return bool(cert.restricted)  # worked out when read (`restricted_numbers`)

    def reissued_at(self, cert: Any) -> Optional[datetime]:
        return cert.reissued_at()

    def issuer(self) -> certs.Issuer:
        return issuer_for(self.engine, self.m)

    def printed(self, cert: Any, by: Any) -> None:
        with self.engine.begin() as conn:
            audit.record(conn, self.m, actor=actor_of(by), action="certificate.printed", detail={
                "number": cert.number, "format": "pdf", "reissue_count": cert.reissue_count, "origin": cert.origin})


def _status(row: Any) -> str:
    return "void" if row["status"] in ("voided", "void") else "issued"


# ---- the desk's entry points (the rules: app.services.certificate_desk) -------------------------------
def issue(engine: Engine, key: Optional[DataKey], municipality: Optional[str], *, resident_id: str, kind: str,
          cause: str, damage: Optional[str] = None, location: str = "", in_person: bool = False,
          identity_note: str = "", include_members: bool = True, by: Any = "hub",
          allow_restricted: bool = True) -> HubCertificate:
    """Issue to the household of resident ``resident_id`` (宛名番号) of the newest registry backup."""
    return desk.issue(HubCertificates(engine, key, municipality), resident_id=resident_id, kind=kind, cause=cause,
                      damage=damage, location=location, in_person=in_person, identity_note=identity_note,
                      include_members=include_members, by=by, allow_restricted=allow_restricted)


def issue_manual(engine: Engine, municipality: Optional[str], *, kind: str, cause: str, name: str, address: str,
                 damage: Optional[str] = None, location: str = "", members: Iterable[dict[str, Any]] = (),
                 note: str = "", by: Any = "hub") -> HubCertificate:
    """The manual path (手動): the registry does not know the applicant; the household as declared."""
    return desk.issue_manual(HubCertificates(engine, None, municipality), kind=kind, cause=cause, name=name,
                             address=address, damage=damage, location=location, members=members, note=note, by=by)


def reissue(engine: Engine, key: Optional[DataKey], municipality: Optional[str], number: Any, *, reason: str = "",
            by: Any = "hub", allow_restricted: bool = True) -> HubCertificate:
    """Same number, same content, reissue count +1, in the history and the audit log; a void
    certificate (or one whose content the hub never received) cannot be reissued."""
    return desk.reissue(HubCertificates(engine, key, municipality), number, reason=reason, by=by,
                        allow_restricted=allow_restricted)


def void(engine: Engine, key: Optional[DataKey], municipality: Optional[str], number: Any, reason: str, *,
         by: Any = "hub") -> HubCertificate:
    """Mark void (never deleted); the reason is required and kept. Works for laptops' certificates too."""
    return desk.void(HubCertificates(engine, key, municipality), number, reason, by=by)


def pdf(engine: Engine, key: Optional[DataKey], municipality: Optional[str], number: Any, *, by: Any = "hub",
        allow_restricted: bool = True, issuer: Optional[certs.Issuer] = None) -> tuple[HubCertificate, bytes]:
    """The certificate as A4 PDF (the one renderer); audited as a print."""
    return desk.pdf(HubCertificates(engine, key, municipality), number, by=by, allow_restricted=allow_restricted,
                    issuer=issuer)
