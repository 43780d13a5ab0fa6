"""Disaster certificates (り災証明書 / 被災証明書): issue, list, reissue, void, print.

One set of plain functions for the CLI and the desk screen. None of them commits: the caller
commits, so the certificate row, its number, its history event, the sync event and the audit
entry are written together or not at all.

The desk's rules and flows are written once (`app.services.certificate_rules`,
`app.services.certificate_desk`) over a store; this module is the shelter's store
(`ShelterCertificates`, over the SQLite session) and the shelter's entry points, which keep their
signatures. The hub's store is `app.hub_certificates`; a certificate checks, counts and prints the
same at either desk.
Each certificate.issued event also carries the printed content boxed to the hub
(`_sealed_for_hub`), so HQ can reprint or reissue a laptop's certificate.

Numbers (整理番号) — unique across every laptop and the hub without talking to each other:

    R-7K3QXM-1-000123      H-7K3QXM-1-000001
    │ │      │ └ per-prefix sequence, gap-free (allocated in the certificate's own transaction,
    │ │      │   so a rolled-back issue gives its number back)
    │ │      └ sync epoch of this laptop (sync.outbox): `anpi restore` starts a new epoch, so a
    │ │        laptop restored from a backup can never reissue a number handed out after that
    │ │        backup was taken
    │ └ 6 characters of Crockford base32 over SHA-256 of the laptop's sync device id (a ULID)
    └ R = り災証明書, H = 被災証明書

The short id keeps the number readable at the desk and on the phone; its 30 bits make a clash
between two laptops unlikely but not impossible: for n laptops the chance that any two share a
short id is about n²/2³¹ — 0.0005 % for 100 laptops, 0.05 % for 1,000. The full device id and
epoch are stored with every certificate (and travel with its sync event), so the hub can always
tell two such numbers apart.

Voids and reissues done at the hub (HQ's certificate desk, app.hub_certificates) reach the laptop
that issued the certificate as hub notices in `remote_event` (`certificate.voided` /
`certificate.reissued`, device "hub", keyed by number). They are shown on top of the laptop's own
rows (`CertificateView`, `hub_actions`): status, reason, reissue count and history say what the hub
did, and a certificate the hub voided is never printed or reissued here. The laptop's own rows are
not rewritten for it (its `CertificateEvent`s stay append-only and its own); the number keeps its
meaning — the same 整理番号 the laptop allocated, whichever desk voided or reissued it.

The household comes from the newest registry snapshot (世帯番号 → members); the applicant must be
tied to the registry by a match decision (auto or confirmed by staff) or by the desk checking an
ID in person, and the certificate records which. People the registry does not know get the
manual path: the household as declared, marked 手動 in the database, on screen and on paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import and_, or_, text as sql_text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from app.formats.certificate_pdf import (
    CERTIFY_HISAI,
    CERTIFY_RISAI,
    DAMAGE_GRADES,
    DAMAGE_JA,
    KIND_JA,
    MANUAL_NOTE,
    Issuer,
    birth_text,
    folded_characters,
    local_date,
    printable,
    wareki,
)
from app.ids import aware, utcnow
from app.models import (
    Certificate,
    CertificateCounter,
    CertificateEvent,
    MatchDecision,
    RegistrySnapshot,
    Resident,
)
from app.services import audit, certificate_desk as desk
from app.services.certificate_desk import DeskHousehold, Issued
from app.services.certificate_rules import (  # the rules, re-exported for the shelter's faces and tests
    ACTION_JA, HEAD_RELATIONSHIPS, IDENTITY_JA, MAX_TEXT, PRINTED_FIELDS, STATUS_JA, clean_text, ensure_printable,
    identity_for, issuer_from_env, kind_and_damage, list_status, manual_fields, member_dict, order_household,
    parse_damage, parse_kind, parse_members, printed_content, refuse_duplicate, refuse_restricted, render_pdf,
    resident_name, short_device_id, who as _who,
)
from app.services.errors import InvalidInput, NotFound
from sync import events, outbox
from sync.models import SyncDevice

__all__ = [
    "DAMAGE_GRADES", "DAMAGE_JA", "KIND_JA", "IDENTITY_JA", "MANUAL_NOTE", "HEAD_RELATIONSHIPS", "STATUS_JA",
    "ACTION_JA", "MAX_TEXT", "PRINTED_FIELDS",
    "CertificateFilter", "Household", "parse_kind", "parse_damage", "parse_members", "short_device_id",
    "allocate_number", "household", "registry_link", "issue", "issue_manual", "list_certificates",
    "get_certificate", "history", "reissue", "void", "pdf", "issuer_from_env", "folded_characters",
    "HubAction", "CertificateView", "hub_actions", "ShelterCertificates",
    "CERTIFY_RISAI", "CERTIFY_HISAI", "birth_text", "local_date", "printable", "wareki",
    # the rules shared with the hub's desk (app.services.certificate_rules), re-exported
    "kind_and_damage", "clean_text", "order_household", "identity_for", "refuse_restricted", "refuse_duplicate",
    "manual_fields", "printed_content", "render_pdf", "ensure_printable", "resident_name", "member_dict",
]

_KIND_PREFIX = {"risai": "R", "hisai": "H"}

# --- numbering ------------------------------------------------------------------------------------

def allocate_number(session: Session, kind: str) -> tuple[str, str, int, int]:
    """The next number for `kind` on this laptop: (number, device_id, epoch, seq). Never commits.

    The counter row is bumped with UPDATE … RETURNING, which takes the write lock first, so two
    writers are serialised; rolled back with the caller's transaction, the number is reused.
    """
    if kind not in _KIND_PREFIX:
        raise InvalidInput(f"unknown certificate kind {kind!r}", "証明書の種類が正しくありません", "kind")
    outbox.ensure_device(session)
    row = session.execute(select(SyncDevice.device_id, SyncDevice.epoch).where(SyncDevice.id == 1)).one()
    device_id, epoch = str(row[0]), int(row[1])
    prefix = f"{_KIND_PREFIX[kind]}-{short_device_id(device_id)}-{epoch}"
    tbl = CertificateCounter.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    session.execute(dialect_insert(tbl).values(prefix=prefix, last_seq=0).on_conflict_do_nothing(index_elements=["prefix"]))
    seq = int(session.execute(update(tbl).where(tbl.c.prefix == prefix).values(last_seq=tbl.c.last_seq + 1)
                              .returning(tbl.c.last_seq)).scalar_one())
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CertificateCounter):
            session.expire(obj)
    return f"{prefix}-{seq:06d}", device_id, epoch, seq


# --- the household from the registry -------------------------------------------------------------

def _newest_snapshot(session: Session) -> RegistrySnapshot:
    snap = session.exec(select(RegistrySnapshot).order_by(RegistrySnapshot.as_of.desc(),  # type: ignore[attr-defined]
                                                          RegistrySnapshot.id.desc())).first()  # type: ignore[union-attr]
    if snap is None:
        raise NotFound("no registry snapshot imported yet (anpi registry import FILE)",
                       "住民基本台帳のデータがまだ取り込まれていません")
    return snap


@dataclass
class Household:
    """The applicant's household in the newest snapshot, head first, then in registry order."""

    snapshot: RegistrySnapshot
    applicant: Resident
    head: Resident
    head_found: bool  # False: nobody is 世帯主/本人, so the applicant stands in as the head
    members: list[Resident]
    link: Optional[MatchDecision]  # the match decision tying the applicant to an evacuee, if any
    restricted: bool = False  # someone in it is under 閲覧制限 (DV等支援措置)
    issued: list[Certificate] = field(default_factory=list)  # certificates already issued to it


def registry_link(session: Session, resident_id: str) -> Optional[MatchDecision]:
    """The current auto/confirmed decision linking some evacuee to `resident_id` (confirmed first).

    Decisions are append-only: an evacuee's newest decision is the one that counts, so a link
    staff later rejected does not count.
    """
    ev_ids = select(MatchDecision.evacuee_id).where(MatchDecision.resident_id == resident_id)
    rows = session.exec(select(MatchDecision).where(MatchDecision.evacuee_id.in_(ev_ids))  # type: ignore[attr-defined]
                        .order_by(MatchDecision.at, MatchDecision.id))
    newest: dict[str, MatchDecision] = {}
    for d in rows:
        newest[d.evacuee_id] = d
    linked = [d for d in newest.values() if d.resident_id == resident_id and d.decision in ("confirmed", "auto")]
    linked.sort(key=lambda d: (d.decision != "confirmed", d.at))
    return linked[0] if linked else None


def household(session: Session, resident_id: str) -> Household:
    """The household of resident `resident_id` (宛名番号) in the newest registry snapshot."""
    rid = (resident_id or "").strip()
    if not rid:
        raise InvalidInput("a resident id (宛名番号) is needed", "宛名番号を指定してください", "resident_id")
    snap = _newest_snapshot(session)
    applicant = session.exec(select(Resident).where(Resident.snapshot_id == snap.id, Resident.resident_id == rid)).first()
    if applicant is None:
        raise NotFound(f"resident {rid} is not in the newest registry snapshot ({snap.as_of})",
                       f"宛名番号 {rid} は住民基本台帳（{snap.as_of} 時点）にありません")
    if applicant.household_id:
        members = list(session.exec(select(Resident).where(Resident.snapshot_id == snap.id,
                                                           Resident.household_id == applicant.household_id)
                                    .order_by(Resident.line_no)))
    else:
        members = [applicant]
    head, head_found, members = order_household(applicant, members)
    same = [Certificate.resident_id.in_([m.resident_id for m in members])]  # type: ignore[attr-defined]
    if applicant.household_id:
        same.append(Certificate.household_id == applicant.household_id)
    issued = _with_hub(session, list(session.exec(select(Certificate).where(Certificate.manual == False, or_(*same))  # noqa: E712
                                                  .order_by(Certificate.issued_at))))
    return Household(snap, applicant, head, head_found, members, registry_link(session, rid),
                     any(m.restricted for m in members), issued)


# --- issuing --------------------------------------------------------------------------------------

def _sealed_for_hub(session: Session, cert: Certificate) -> Optional[str]:
    """`printed_content` boxed from this laptop to its hub (None before enrolment).

    Why sealed: the hub forwards every event to the municipality's other laptops, which must not
    learn a household's names and address (least of all a 閲覧制限 one); only the hub can open it.
    """
    dev = session.get(SyncDevice, 1)
    if dev is None or not dev.hub_box_public_key:
        return None
    from sync import crypto
    from sync.canonical import canonical_bytes

    box = crypto.device_box(crypto.signing_key_from_b64(dev.signing_key), dev.hub_box_public_key)
    return crypto.b64e(bytes(box.encrypt(canonical_bytes(printed_content(cert)))))


def _issue_event(session: Session, cert: Certificate, *, reissue: bool) -> events.CertificateIssued:
    extra: dict[str, Any] = {"manual": cert.manual, "device_id": cert.device_id, "epoch": cert.epoch,
                             "reissue_count": cert.reissue_count}
    sealed = _sealed_for_hub(session, cert)
    if sealed:
        extra["sealed"] = sealed
    return events.CertificateIssued(
        number=cert.number, kind=cert.kind, resident_id=cert.resident_id or None,
        household_id=cert.household_id or None, issued_at=cert.issued_at, damage=cert.damage or None,
        cause=cert.cause, by_user=cert.issued_by or None, reissue_of=cert.number if reissue else None,
        extra=extra,
    )


def issue(session: Session, *, resident_id: str, kind: str, cause: str, damage: str | None = None,
          location: str = "", in_person: bool = False, identity_note: str = "", include_members: bool = True,
          by: Any = "", screen: str = "cli", allow_restricted: bool = True) -> Certificate:
    """Issue a certificate to the household of resident `resident_id` (`certificate_desk.issue`); the
    caller commits."""
    return desk.issue(ShelterCertificates(session, screen=screen), resident_id=resident_id, kind=kind, cause=cause,
                      damage=damage, location=location, in_person=in_person, identity_note=identity_note,
                      include_members=include_members, by=by, allow_restricted=allow_restricted)


def issue_manual(session: Session, *, kind: str, cause: str, name: str, address: str, damage: str | None = None,
                 location: str = "", members: Iterable[dict[str, Any]] = (), note: str = "", by: Any = "",
                 screen: str = "cli") -> Certificate:
    """The manual path: the registry does not know the applicant, so the household is as declared (手動)."""
    return desk.issue_manual(ShelterCertificates(session, screen=screen), kind=kind, cause=cause, name=name,
                             address=address, damage=damage, location=location, members=members, note=note, by=by)


# --- reading --------------------------------------------------------------------------------------

@dataclass
class CertificateFilter:
    q: str = ""  # part of the number, the head's name or address, or a 宛名番号
    kind: str = ""  # risai | hisai | "" (both)
    status: str = ""  # issued | void | "" (both)
    manual: Optional[bool] = None
    #: the caller may see 閲覧制限 households (the "restricted" permission). Without it, `q` never
    #: matches the address or location of a certificate whose applicant or household is flagged in
    #: any snapshot: a hit would tell where the household is (an address oracle). Fail-closed default.
    reveal_restricted: bool = False


def list_certificates(session: Session, f: CertificateFilter | None = None, *, limit: int = 500) -> list[Any]:
    """Newest first; each as this laptop shows it (`CertificateView` when the hub voided or reissued it)."""
    f = f or CertificateFilter()
    q = select(Certificate)
    if f.kind:
        q = q.where(Certificate.kind == parse_kind(f.kind))
    status = list_status(f.status)
    hub_void = sorted({a.number for acts in hub_actions(session).values() for a in acts if a.action == "void"})
    if status == "void":
        q = q.where(or_(Certificate.status == "void", Certificate.number.in_(hub_void)))  # type: ignore[attr-defined]
    elif status == "issued":  # the hub's voids are left out below (a notice counts for its own device only)
        q = q.where(Certificate.status == "issued")
    if f.manual is not None:
        q = q.where(Certificate.manual == f.manual)
    text = (f.q or "").strip()
    if text:
        like = f"%{text}%"
        where = or_(Certificate.head_address.like(like), Certificate.location.like(like))  # type: ignore[attr-defined]
        if not f.reveal_restricted:
            flagged = select(Resident.resident_id).where(Resident.restricted == True)  # noqa: E712
            flagged_hh = select(Resident.household_id).where(Resident.restricted == True,  # noqa: E712
                                                             Resident.household_id.is_not(None),  # type: ignore[union-attr]
                                                             Resident.household_id != "")
            where = and_(where, Certificate.resident_id.not_in(flagged),  # type: ignore[attr-defined]
                         Certificate.household_id.not_in(flagged_hh))  # type: ignore[attr-defined]
        q = q.where(or_(Certificate.number.like(like), Certificate.head_name.like(like),  # type: ignore[attr-defined]
                        where, Certificate.resident_id == text, Certificate.household_id == text))
    rows = _with_hub(session, list(session.exec(q.order_by(Certificate.issued_at.desc(),  # type: ignore[attr-defined]
                                                           Certificate.number.desc()).limit(limit))))  # type: ignore[attr-defined]
    return [c for c in rows if not status or c.status == status]


def _row(session: Session, number: str) -> Certificate:
    """The laptop's own row (what reissue and void change)."""
    number = (number or "").strip().upper()
    cert = session.exec(select(Certificate).where(Certificate.number == number)).first()
    if cert is None:
        raise NotFound(f"no certificate numbered {number!r}", f"整理番号 {number} の証明書はありません")
    return cert


def get_certificate(session: Session, number: str) -> Any:
    """One certificate as this laptop shows it: the row, or a `CertificateView` of it when the hub
    voided or reissued it (status, reason and count as the hub left them)."""
    return _with_hub(session, [_row(session, number)])[0]


# --- what the hub did to this laptop's certificates ---------------------------------------------------

@dataclass(frozen=True)
class HubAction:
    """A void or reissue done at the hub's certificate desk, as pulled (a `remote_event` notice).
    Has the attributes of a `CertificateEvent`, so the history lists both alike."""

    number: str
    action: str  # void | reissue
    reason: str
    by_user: str
    at: datetime
    reissue_count: int = 0
    device_id: str = ""  # the laptop that issued the certificate, as the hub knows it
    id: str = ""  # the notice's id
    where: str = "hub"


def _parse_at(value: Any, fallback: Any) -> datetime:
    for v in (value, fallback):
        try:
            return aware(datetime.fromisoformat(str(v).replace("Z", "+00:00")))  # type: ignore[return-value]
        except (TypeError, ValueError):
            continue
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


_HUB_ACTION = {"certificate.voided": "void", "certificate.reissued": "reissue"}


def hub_actions(session: Session, numbers: Iterable[str] | None = None) -> dict[str, list[HubAction]]:
    """number → the hub's voids and reissues of it, oldest first, from the pulled notices (only the
    hub's own: device "hub"; a laptop's certificate events are other laptops' business)."""
    sql = ("SELECT event_id, type, payload, recorded_at FROM remote_event WHERE device_id = 'hub' "
           "AND type IN ('certificate.voided', 'certificate.reissued')")
    wanted = None if numbers is None else {n for n in numbers if n}
    if wanted is not None and not wanted:
        return {}
    try:
        rows = session.execute(sql_text(sql + " ORDER BY hub_seq")).all()
    except OperationalError:  # a database made before sync existed has no remote_event table
        return {}
    out: dict[str, list[HubAction]] = {}
    for event_id, etype, payload, recorded_at in rows:
        try:
            p = json.loads(payload)
        except ValueError:
            continue
        number = str(p.get("number") or "").strip().upper() if isinstance(p, dict) else ""
        if not number or (wanted is not None and number not in wanted):
            continue
        by = str(p.get("by") or "")
        count = p.get("reissue_count")
        out.setdefault(number, []).append(HubAction(
            number=number, action=_HUB_ACTION[etype], reason=str(p.get("reason") or ""),
            by_user=f"本部 {by}".strip(), at=_parse_at(p.get("at"), recorded_at),
            reissue_count=count if isinstance(count, int) else 0, device_id=str(p.get("device_id") or ""),
            id=str(event_id)))
    for acts in out.values():
        acts.sort(key=lambda a: (a.at, a.id))
    return out


class CertificateView:
    """A certificate as this laptop shows it: its own row with what the hub did on top.

    Reads like the `Certificate` (every other attribute is the row's) but never changes it: the
    hub's void makes ``status`` "void" with the hub's reason (a void done here first keeps its own
    reason); a hub reissue raises ``reissue_count`` to the hub's count. ``hub_actions`` lists them.
    """

    def __init__(self, cert: Certificate, actions: list[HubAction]) -> None:
        self._cert = cert
        self.hub_actions = actions
        voids = [a for a in actions if a.action == "void"]
        self.hub_voided = bool(voids)
        if cert.status == "issued" and voids:
            self.status, self.void_reason = "void", voids[0].reason or "本部で無効化"
        else:
            self.status, self.void_reason = cert.status, cert.void_reason
        self.reissue_count = max([cert.reissue_count, *(a.reissue_count for a in actions if a.action == "reissue")])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_cert":  # copy/pickle probe before __init__ ran
            raise AttributeError(name)
        return getattr(self._cert, name)

    @property
    def row(self) -> Certificate:
        return self._cert


def _with_hub(session: Session, rows: list[Certificate]) -> list[Any]:
    """Each row, or its `CertificateView` when the hub voided or reissued it. A notice counts for a
    row only when it names the device that issued the row (or names none): two laptops' numbers
    can look alike (short ids may clash), their certificates never are the same."""
    acts = hub_actions(session, [c.number for c in rows])
    out: list[Any] = []
    for c in rows:
        mine = [a for a in acts.get(c.number, ()) if not a.device_id or not c.device_id or a.device_id == c.device_id]
        out.append(CertificateView(c, mine) if mine else c)
    return out


def history(session: Session, number: str) -> list[Any]:
    """The certificate's issue / reissue / void entries, this laptop's (`CertificateEvent`) and the
    hub's (`HubAction`, by_user marked 本部), by time."""
    local = list(session.exec(select(CertificateEvent).where(CertificateEvent.number == number)
                              .order_by(CertificateEvent.at, CertificateEvent.id)))
    cert = session.exec(select(Certificate).where(Certificate.number == number)).first()
    dev = cert.device_id if cert is not None else ""
    remote = [a for a in hub_actions(session, [number]).get(number, ())
              if not a.device_id or not dev or a.device_id == dev]
    if not remote:
        return local  # type: ignore[return-value]
    return sorted([*local, *remote], key=lambda e: (aware(e.at), str(e.id)))


def last_reissue_at(session: Session, number: str) -> Optional[datetime]:
    at = [e.at for e in history(session, number) if e.action == "reissue"]
    return at[-1] if at else None



# --- reissue, void, print -------------------------------------------------------------------------

def reissue(session: Session, number: str, *, by: Any = "", reason: str = "", screen: str = "cli") -> Certificate:
    """Same number, same content, reissue counter +1, logged; a void certificate cannot be reissued."""
    return desk.reissue(ShelterCertificates(session, screen=screen), number, reason=reason, by=by)


def void(session: Session, number: str, reason: str, *, by: Any = "", screen: str = "cli") -> Certificate:
    """Mark a certificate void (never deleted); the reason is required and kept."""
    return desk.void(ShelterCertificates(session, screen=screen), number, reason, by=by)


def pdf(session: Session, number: str, *, by: Any = "", screen: str = "cli", issuer: Issuer | None = None) -> bytes:
    """The certificate as A4 PDF bytes; audited as a print. Refuses a void certificate."""
    return desk.pdf(ShelterCertificates(session, screen=screen), number, by=by, issuer=issuer)[1]


# --- the shelter's store for the desk's rules ----------------------------------------------------

class ShelterCertificates:
    """`certificate_desk.CertificateStore` over the shelter's SQLite session. Never commits: the
    row, its number, its history event, the sync event and the audit entry join the caller's
    transaction. Voids and reissues the hub pulled count (`CertificateView`)."""

    def __init__(self, session: Session, *, screen: str = "cli") -> None:
        self.session, self.screen = session, screen
        self._issued: dict[str, list[Issued]] = {}  # resident id → the household's certificates, as read

    def household(self, resident_id: str) -> DeskHousehold:
        hh = household(self.session, resident_id)
        rid = hh.applicant.resident_id
        self._issued[rid] = [(c.kind, c.status, c.cause, c.number) for c in hh.issued]
        return DeskHousehold(hh.applicant, hh.head, hh.head_found, hh.members, hh.restricted, hh.snapshot.id,
                             link_decision=hh.link.decision if hh.link else None,
                             link_evacuee=hh.link.evacuee_id if hh.link else None)

    def add(self, content: dict[str, Any], *, resident_id: str, household_id: str, subjects: list[str], by: Any,
            check: Optional[Callable[[Iterable[Issued]], None]]) -> Certificate:
        if check is not None:
            check(self._issued.get(resident_id, []))
        session = self.session
        cert = Certificate(number="", resident_id=resident_id, household_id=household_id, **content)
        number, device_id, epoch, seq = allocate_number(session, cert.kind)
        cert.number, cert.device_id, cert.epoch, cert.seq = number, device_id, epoch, seq
        cert.issued_by, cert.issued_at = _who(by), utcnow()
        session.add(cert)
        session.add(CertificateEvent(number=number, action="issue", by_user=cert.issued_by, at=cert.issued_at))
        session.flush()
        outbox.append(session, _issue_event(session, cert, reissue=False))
        audit.record(session, by, "certificate_issue", self.screen, [f"certificate:{number}", *subjects],
                     {"number": number, "kind": cert.kind, "damage": cert.damage, "manual": cert.manual,
                      "identity": cert.identity})
        return cert

    def shown(self, number: str) -> Any:
        return get_certificate(self.session, number)

    def _own(self, number: str) -> tuple[Certificate, Any]:
        cert = _row(self.session, number)
        return cert, _with_hub(self.session, [cert])[0]  # a void or reissue at the hub counts here too

    def reissued(self, number: str, *, reason: str, by: Any, check: Callable[[str, str], None]) -> Certificate:
        cert, shown = self._own(number)
        check(shown.status, shown.void_reason)
        cert.reissue_count = shown.reissue_count + 1  # counts on from the hub's reissues
        self.session.add(cert)
        self.session.add(CertificateEvent(number=cert.number, action="reissue", reason=reason, by_user=_who(by)))
        self.session.flush()
        outbox.append(self.session, _issue_event(self.session, cert, reissue=True))
        audit.record(self.session, by, "certificate_reissue", self.screen, [f"certificate:{cert.number}"],
                     {"number": cert.number, "reissue_count": cert.reissue_count, "reason": reason})
        return cert

    def voided(self, number: str, *, reason: str, by: Any, check: Callable[[str, str], None]) -> Certificate:
        cert, shown = self._own(number)
        check(shown.status, shown.void_reason)
        cert.status, cert.void_reason = "void", reason
        now = utcnow()
        self.session.add(cert)
        self.session.add(CertificateEvent(number=cert.number, action="void", reason=reason, by_user=_who(by), at=now))
        self.session.flush()
        outbox.append(self.session, events.CertificateVoided(
            number=cert.number, kind=cert.kind, resident_id=cert.resident_id or None,
            household_id=cert.household_id or None, reason=reason, voided_at=now, by_user=_who(by) or None))
        audit.record(self.session, by, "certificate_void", self.screen, [f"certificate:{cert.number}"],
                     {"number": cert.number, "reason": reason})
        return cert

    def restricted(self, cert: Any) -> bool:
        """The applicant or the household (世帯番号) is flagged in any snapshot: the same test as the
        list's address search (`list_certificates`). The manual path is not tied to the registry."""
        if cert.manual or not (cert.resident_id or cert.household_id):
            return False
        flagged = or_(Resident.resident_id == cert.resident_id,
                      and_(Resident.household_id == cert.household_id, Resident.household_id != ""))
        return self.session.exec(select(Resident.id).where(Resident.restricted == True, flagged)  # noqa: E712
                                 .limit(1)).first() is not None

    def reissued_at(self, cert: Any) -> Optional[datetime]:
        return last_reissue_at(self.session, cert.number)

    def issuer(self) -> Issuer:
        return issuer_from_env()

    def printed(self, cert: Any, by: Any) -> None:
        audit.record(self.session, by, "print", self.screen, [f"certificate:{cert.number}"],
                     {"number": cert.number, "format": "pdf", "reissue_count": cert.reissue_count})
