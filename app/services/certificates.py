"""Disaster certificates (り災証明書 / 被災証明書): issue, list, reissue, void, print.

One set of plain functions for the CLI and the desk screen. None of them commits: the caller
commits, so the certificate row, its number, its history event, the sync event and the audit
entry are written together or not at all.

The hub's certificate desk (app.hub_certificates) keeps its own rows (hub tables, PostgreSQL)
but shares every rule and the renderer with this module: `kind_and_damage`, `clean_text`,
`order_household`, `member_dict`, `identity_for`, `refuse_restricted`, `refuse_duplicate`,
`manual_fields`, `render_pdf` — so a certificate reads and checks the same at either desk.
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

import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

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
    CertificateNotPrintable,
    Issuer,
    birth_text,
    folded_characters,
    local_date,
    printable,
    render_certificate_pdf,
    wareki,
)
from app.ids import utcnow
from app.models import (
    Certificate,
    CertificateCounter,
    CertificateEvent,
    MatchDecision,
    RegistrySnapshot,
    Resident,
)
from app.services import audit
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from matching.dates import DateError, parse_date
from sync import events, outbox
from sync.models import SyncDevice

__all__ = [
    "DAMAGE_GRADES", "DAMAGE_JA", "KIND_JA", "IDENTITY_JA", "MANUAL_NOTE", "HEAD_RELATIONSHIPS",
    "CertificateFilter", "Household", "parse_kind", "parse_damage", "parse_members", "short_device_id",
    "allocate_number", "household", "registry_link", "issue", "issue_manual", "list_certificates",
    "get_certificate", "history", "reissue", "void", "pdf", "issuer_from_env", "folded_characters",
    "HubAction", "CertificateView", "hub_actions",
    "CERTIFY_RISAI", "CERTIFY_HISAI", "birth_text", "local_date", "printable", "wareki",
    # shared with the hub's desk (app.hub_certificates): one rule set, one renderer
    "kind_and_damage", "clean_text", "order_household", "identity_for", "refuse_restricted", "refuse_duplicate",
    "manual_fields", "printed_content", "render_pdf", "ensure_printable", "resident_name", "member_dict",
]

#: how the applicant was tied to the registry
IDENTITY_JA = {
    "match_confirmed": "避難者名簿との照合（職員が確定）",
    "match_auto": "避難者名簿との照合（自動）",
    "in_person": "窓口で本人確認",
    "manual": "申請者の申告（台帳で確認できず）",
}
#: 続柄 that mark the household head in registry exports (some vendors write 本人 for the head)
HEAD_RELATIONSHIPS = ("世帯主", "本人")
STATUS_JA = {"issued": "有効", "void": "無効"}
ACTION_JA = {"issue": "発行", "reissue": "再発行", "void": "無効化"}
MAX_TEXT = 200
_KIND_PREFIX = {"risai": "R", "hisai": "H"}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_KIND_ALIASES = {
    "risai": "risai", "r": "risai", "り災": "risai", "罹災": "risai", "り災証明": "risai", "り災証明書": "risai",
    "罹災証明書": "risai", "hisai": "hisai", "h": "hisai", "被災": "hisai", "被災証明": "hisai", "被災証明書": "hisai",
}
_DAMAGE_ALIASES: dict[str, str] = {
    **{code: code for code, _ in DAMAGE_GRADES},
    **{unicodedata.normalize("NFKC", ja): code for code, ja in DAMAGE_GRADES},
    "daikibo-hankai": "daikibo", "daikibohankai": "daikibo", "大規模": "daikibo",
    "chukibo-hankai": "chukibo", "chukibohankai": "chukibo", "chuukibo": "chukibo", "中規模": "chukibo",
    "jun-hankai": "junhankai", "junhan": "junhankai",
    "ichibu-sonkai": "ichibu", "ichibusonkai": "ichibu", "一部損壊": "ichibu", "準半壊に至らない": "ichibu",
}


# --- parsing what people type ---------------------------------------------------------------------

def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").split()).lower()


def parse_kind(text: str) -> str:
    """risai / hisai from the code or the Japanese name (り災証明書, 被災証明書, 罹災 …)."""
    kind = _KIND_ALIASES.get(_norm(text))
    if kind is None:
        raise InvalidInput(f"unknown certificate kind {text!r} (risai or hisai)",
                           "証明書の種類は「り災証明書」か「被災証明書」を選んでください", "kind")
    return kind


def parse_damage(text: str) -> str:
    """A damage-grade code from the Japanese name (全壊, 準半壊に至らない（一部損壊）…) or a short code."""
    code = _DAMAGE_ALIASES.get(_norm(text))
    if code is None:
        names = " / ".join(ja for _, ja in DAMAGE_GRADES)
        codes = "/".join(c for c, _ in DAMAGE_GRADES)
        raise InvalidInput(f"unknown damage grade {text!r}: use one of {names} or {codes}",
                           f"住家の被害の程度が正しくありません（{names} から選んでください）", "damage")
    return code


def parse_members(text: str) -> list[dict[str, Any]]:
    """Members typed at the desk, one per line: `氏名, 続柄, 生年月日` (続柄 and 生年月日 optional).

    The birth date accepts what the intake screen accepts (S45.3.1, 昭和45年3月1日, 1970-03-01);
    a line that cannot be read names its line number.
    """
    out: list[dict[str, Any]] = []
    for n, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.replace("，", ",").replace("、", ",").split(",")]
        if len(parts) > 3:
            raise InvalidInput(f"members line {n}: at most three fields (name, relationship, birth date)",
                               f"世帯構成員の{n}行目: 「氏名, 続柄, 生年月日」の3項目までです", "members")
        name, rel, birth = (parts + ["", ""])[:3]
        if not name:
            raise InvalidInput(f"members line {n}: the name is empty", f"世帯構成員の{n}行目: 氏名がありません", "members")
        birth_iso = ""
        if birth:
            try:
                pd = parse_date(birth)
            except DateError as exc:
                raise InvalidInput(f"members line {n}: birth date {birth!r}: {exc}",
                                   f"世帯構成員の{n}行目: 生年月日「{birth}」を読めません", "members") from None
            if pd.kind != "day" or pd.value is None:
                raise InvalidInput(f"members line {n}: birth date {birth!r} is not a full date",
                                   f"世帯構成員の{n}行目: 生年月日「{birth}」は年月日まで入力してください", "members")
            birth_iso = pd.value.isoformat()
        out.append({"resident_id": "", "name": name, "relationship": rel, "birth_date": birth_iso})
    return out


def clean_text(value: str, field_name: str, label_ja: str, *, required: bool = True) -> str:
    """Trimmed free text; empty (when required) or too long is refused, naming the field."""
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field_name} must be text", f"{label_ja}は文字で入力してください", field_name)
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(f"{field_name} is required", f"{label_ja}を入力してください", field_name)
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{field_name} is longer than {MAX_TEXT} characters",
                           f"{label_ja}が長すぎます（{MAX_TEXT}文字まで）", field_name)
    return value


def _who(by: Any) -> str:
    return str(by if isinstance(by, str) else getattr(by, "name", "") or "")


# --- numbering ------------------------------------------------------------------------------------

def short_device_id(device_id: str) -> str:
    """6 Crockford-base32 characters (no I, L, O, U: nothing to misread at the desk) of SHA-256(device_id)."""
    bits = int.from_bytes(hashlib.sha256(device_id.encode("utf-8")).digest()[:4], "big") >> 2  # 30 bits
    return "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(25, -1, -5))


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


def resident_name(r: Any) -> str:
    """氏名 as registered (old kanji and gaiji kept), 氏 and 名 separated by a full-width space."""
    kanji = "　".join(x for x in (r.family_name, r.given_name) if x)
    return kanji or r.alpha_name or "　".join(x for x in (r.family_name_kana, r.given_name_kana) if x)


def member_dict(r: Any) -> dict[str, Any]:
    """A 世帯構成員 as stored and printed, from a `Resident` or anything with its attributes (the hub
    hands in its decrypted registry rows, where the birth date is already ISO text)."""
    birth = r.birth_date
    return {"resident_id": r.resident_id, "name": resident_name(r), "relationship": r.relationship or "",
            "birth_date": birth.isoformat() if hasattr(birth, "isoformat") else str(birth or ""),
            "birth_raw": r.birth_raw or ""}


def order_household(applicant: Any, members: list[Any]) -> tuple[Any, bool, list[Any]]:
    """(head, head_found, members head first, otherwise in registry order).

    The head is whoever the registry calls 世帯主 (or 本人); when nobody is, the applicant stands in
    (head_found False). Shared by the shelter and the hub, so both print the same household.
    """
    head = next((m for rel in HEAD_RELATIONSHIPS for m in members if (m.relationship or "").strip() == rel), None)
    head_found = head is not None
    head = head if head is not None else applicant
    return head, head_found, sorted(members, key=lambda m: m is not head)  # stable: registry order kept


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

def kind_and_damage(kind: str, damage: str | None) -> tuple[str, str]:
    """(kind, damage code): a り災証明書 needs a grade, a 被災証明書 must not carry one."""
    if not isinstance(kind, str) or (damage is not None and not isinstance(damage, str)):
        bad = "kind" if not isinstance(kind, str) else "damage"
        raise InvalidInput(f"{bad} must be text", "証明書の種類・被害の程度は文字で指定してください", bad)
    kind = parse_kind(kind)
    if kind == "risai":
        if not (damage or "").strip():
            raise InvalidInput("a り災証明書 needs the damage grade (--damage)", "住家の被害の程度を選んでください", "damage")
        return kind, parse_damage(damage or "")
    if (damage or "").strip():
        raise InvalidInput("a 被災証明書 carries no damage grade (leave --damage out)",
                           "被災証明書には被害の程度を記載しません", "damage")
    return kind, ""


def identity_for(link_decision: Optional[str], in_person: bool, identity_note: str,
                 resident_id: str) -> tuple[str, str]:
    """(identity, note): how the applicant is tied to the registry — the same rule at the shelter and
    the hub. A current auto/confirmed link to an evacuee is enough; otherwise the desk must have
    checked an ID in person; otherwise the issue is refused (the manual path is for people the
    registry does not know, not for skipping the check)."""
    if link_decision in ("confirmed", "auto"):
        note = ("窓口でも本人確認 " + identity_note).strip() if in_person else identity_note
        return f"match_{link_decision}", note
    if in_person:
        return "in_person", identity_note
    raise InvalidInput(
        f"resident {resident_id} is not linked to any evacuee by an auto or confirmed match; "
        "check the applicant's ID in person and say so (--in-person), or confirm the match in the review queue",
        "この方は避難者名簿との照合が確定していません。本人確認書類で確認したうえで「窓口で本人確認済み」を選んでください",
        "identity")


def refuse_restricted(resident_id: str) -> None:
    """閲覧制限 (DV等支援措置): roles that may not see such a household's address may not issue its
    certificate either (the paper carries the address); HQ or an administrator does."""
    raise Forbidden(f"resident {resident_id}'s household is under 閲覧制限 (DV等支援措置); "
                    "HQ or an administrator must issue this certificate",
                    "この世帯は閲覧制限（支援措置）の対象です。本部または管理者が発行してください")


def refuse_duplicate(issued: Iterable[tuple[str, str, str, str]], kind: str, cause: str) -> None:
    """One valid certificate per household, kind and cause: `issued` is (kind, status, cause, number)."""
    for k, status, c, number in issued:
        if k == kind and status == "issued" and c == cause:
            raise Conflict(f"this household already has {KIND_JA[kind]} {number} for the same cause; "
                           "reissue it, or void it (with a reason) before issuing a new one",
                           f"この世帯には同じ罹災原因の{KIND_JA[kind]}（{number}）が発行済みです。"
                           "再発行するか、理由を記録して無効にしてから発行してください")


def manual_fields(*, kind: str, cause: str, name: str, address: str, damage: str | None = None, location: str = "",
                  members: Iterable[dict[str, Any]] = (), note: str = "") -> dict[str, Any]:
    """The checked content of a manual-path certificate (手動: household as declared), for either desk."""
    kind, damage_code = kind_and_damage(kind, damage)
    cause = clean_text(cause, "cause", "罹災原因")
    name = clean_text(name, "name", "世帯主氏名")
    address = clean_text(address, "address", "世帯主住所")
    location = clean_text(location, "location", "被災住家の所在地", required=False)
    note = clean_text(note, "note", "備考", required=False)
    member_list = [dict(m) for m in members]
    for m in member_list:
        if not str(m.get("name", "")).strip():
            raise InvalidInput("a household member without a name", "氏名のない世帯構成員があります", "members")
    return {"kind": kind, "damage": damage_code, "cause": cause, "head_name": name, "head_address": address,
            "location": location or address, "members": member_list, "manual": True,
            "manual_reason": MANUAL_NOTE + (f"（{note}）" if note else ""), "identity": "manual", "identity_note": note}


PRINTED_FIELDS = ("kind", "head_address", "head_name", "cause", "location", "damage", "members", "manual",
                  "manual_reason")


def printed_content(cert: Any) -> dict[str, Any]:
    """What the paper shows (besides number, dates and reissue count): sealed for the hub in each
    certificate.issued event, so HQ can reprint or reissue a laptop's certificate."""
    return {f: getattr(cert, f) for f in PRINTED_FIELDS}


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


def _store_new(session: Session, cert: Certificate, by: Any, screen: str, subjects: list[str]) -> Certificate:
    number, device_id, epoch, seq = allocate_number(session, cert.kind)
    cert.number, cert.device_id, cert.epoch, cert.seq = number, device_id, epoch, seq
    cert.issued_by = _who(by)
    cert.issued_at = utcnow()
    session.add(cert)
    session.add(CertificateEvent(number=number, action="issue", by_user=cert.issued_by, at=cert.issued_at))
    session.flush()
    outbox.append(session, _issue_event(session, cert, reissue=False))
    audit.record(session, by, "certificate_issue", screen, [f"certificate:{number}", *subjects],
                 {"number": number, "kind": cert.kind, "damage": cert.damage, "manual": cert.manual,
                  "identity": cert.identity})
    return cert


def issue(session: Session, *, resident_id: str, kind: str, cause: str, damage: str | None = None,
          location: str = "", in_person: bool = False, identity_note: str = "", include_members: bool = True,
          by: Any = "", screen: str = "cli", allow_restricted: bool = True) -> Certificate:
    """Issue a certificate to the household of resident `resident_id`; the caller commits.

    `in_person`: the desk checked the applicant's ID (needed when no match decision links the
    resident to an evacuee). `allow_restricted` is False for roles that may not see 閲覧制限
    residents; their certificates are then refused rather than printed with an address.
    """
    kind, damage_code = kind_and_damage(kind, damage)
    cause = clean_text(cause, "cause", "罹災原因")
    location = clean_text(location, "location", "被災住家の所在地", required=False)
    identity_note = clean_text(identity_note, "identity_note", "本人確認の方法", required=False)
    hh = household(session, resident_id)
    if hh.restricted and not allow_restricted:
        refuse_restricted(hh.applicant.resident_id)
    identity, identity_note = identity_for(hh.link.decision if hh.link else None, in_person, identity_note,
                                           hh.applicant.resident_id)
    refuse_duplicate(((c.kind, c.status, c.cause, c.number) for c in hh.issued), kind, cause)
    cert = Certificate(
        number="", kind=kind, resident_id=hh.applicant.resident_id, household_id=hh.applicant.household_id,
        head_address=hh.head.address, head_name=resident_name(hh.head), cause=cause,
        location=location or hh.head.address, damage=damage_code,
        members=[member_dict(m) for m in hh.members] if include_members else [],
        manual=False, identity=identity, identity_note=identity_note,
        evacuee_id=hh.link.evacuee_id if hh.link else None, snapshot_id=hh.snapshot.id,
    )
    subjects = [f"resident:{m.resident_id}" for m in hh.members]
    if hh.link is not None:
        subjects.append(f"evacuee:{hh.link.evacuee_id}")
    return _store_new(session, cert, by, screen, subjects)


def issue_manual(session: Session, *, kind: str, cause: str, name: str, address: str, damage: str | None = None,
                 location: str = "", members: Iterable[dict[str, Any]] = (), note: str = "", by: Any = "",
                 screen: str = "cli") -> Certificate:
    """The manual path: the registry does not know the applicant, so the household is as declared (手動)."""
    fields = manual_fields(kind=kind, cause=cause, name=name, address=address, damage=damage, location=location,
                           members=members, note=note)
    cert = Certificate(number="", resident_id="", household_id="", snapshot_id=None, **fields)
    return _store_new(session, cert, by, screen, [])


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
    if f.status and f.status not in STATUS_JA:
        raise InvalidInput(f"unknown status {f.status!r} (issued or void)", "状態が正しくありません", "status")
    hub_void = sorted({a.number for acts in hub_actions(session).values() for a in acts if a.action == "void"})
    if f.status == "void":
        q = q.where(or_(Certificate.status == "void", Certificate.number.in_(hub_void)))  # type: ignore[attr-defined]
    elif f.status == "issued":  # the hub's voids are left out below (a notice counts for its own device only)
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
    return [c for c in rows if not f.status or c.status == f.status]


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


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _parse_at(value: Any, fallback: Any) -> datetime:
    for v in (value, fallback):
        try:
            return _aware(datetime.fromisoformat(str(v).replace("Z", "+00:00")))
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
    return sorted([*local, *remote], key=lambda e: (_aware(e.at), str(e.id)))


def last_reissue_at(session: Session, number: str) -> Optional[datetime]:
    at = [e.at for e in history(session, number) if e.action == "reissue"]
    return at[-1] if at else None


# --- reissue, void, print -------------------------------------------------------------------------

def reissue(session: Session, number: str, *, by: Any = "", reason: str = "", screen: str = "cli") -> Certificate:
    """Same number, same content, reissue counter +1, logged; a void certificate cannot be reissued."""
    cert = _row(session, number)
    shown = _with_hub(session, [cert])[0]  # a void or reissue at the hub counts here too
    if shown.status != "issued":
        raise Conflict(f"certificate {cert.number} is void and cannot be reissued (reason: {shown.void_reason})",
                       f"証明書 {cert.number} は無効のため再発行できません（理由: {shown.void_reason}）")
    reason = clean_text(reason, "reason", "再発行の理由", required=False)
    cert.reissue_count = shown.reissue_count + 1  # counts on from the hub's reissues
    session.add(cert)
    session.add(CertificateEvent(number=cert.number, action="reissue", reason=reason, by_user=_who(by)))
    session.flush()
    outbox.append(session, _issue_event(session, cert, reissue=True))
    audit.record(session, by, "certificate_reissue", screen, [f"certificate:{cert.number}"],
                 {"number": cert.number, "reissue_count": cert.reissue_count, "reason": reason})
    return cert


def void(session: Session, number: str, reason: str, *, by: Any = "", screen: str = "cli") -> Certificate:
    """Mark a certificate void (never deleted); the reason is required and kept."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("voiding a certificate needs a reason (--reason)", "無効にする理由を入力してください", "reason")
    reason = clean_text(reason, "reason", "無効にする理由")
    cert = _row(session, number)
    shown = _with_hub(session, [cert])[0]
    if shown.status == "void":
        raise Conflict(f"certificate {cert.number} is already void (reason: {shown.void_reason})",
                       f"証明書 {cert.number} はすでに無効です（理由: {shown.void_reason}）")
    cert.status = "void"
    cert.void_reason = reason
    now = utcnow()
    session.add(cert)
    session.add(CertificateEvent(number=cert.number, action="void", reason=reason, by_user=_who(by), at=now))
    session.flush()
    outbox.append(session, events.CertificateVoided(
        number=cert.number, kind=cert.kind, resident_id=cert.resident_id or None,
        household_id=cert.household_id or None, reason=reason, voided_at=now, by_user=_who(by) or None))
    audit.record(session, by, "certificate_void", screen, [f"certificate:{cert.number}"],
                 {"number": cert.number, "reason": reason})
    return cert


def issuer_from_env() -> Issuer:
    """The certifying 市町村長 as printed (ANPI_CERT_ISSUER, e.g. 陸前高田市長　山田太郎); empty → a line to sign."""
    return Issuer(os.environ.get("ANPI_CERT_ISSUER", "").strip())


def ensure_printable(cert: Any) -> None:
    if cert.status != "issued":
        raise Conflict(f"certificate {cert.number} is void and can never be printed (reason: {cert.void_reason})",
                       f"証明書 {cert.number} は無効のため印刷できません（理由: {cert.void_reason}）")


def pdf(session: Session, number: str, *, by: Any = "", screen: str = "cli", issuer: Issuer | None = None) -> bytes:
    """The certificate as A4 PDF bytes; audited as a print. Refuses a void certificate."""
    cert = get_certificate(session, number)
    data = render_pdf(cert, reissued_at=last_reissue_at(session, cert.number), issuer=issuer)
    audit.record(session, by, "print", screen, [f"certificate:{cert.number}"],
                 {"number": cert.number, "format": "pdf", "reissue_count": cert.reissue_count})
    return data


def render_pdf(cert: Any, *, reissued_at: Optional[datetime] = None, issuer: Issuer | None = None) -> bytes:
    """The one way either desk (shelter or hub) turns a certificate into A4 PDF bytes: refuses a void
    one, prints the certifying 市町村長 from ANPI_CERT_ISSUER unless `issuer` says otherwise."""
    ensure_printable(cert)
    try:
        return render_certificate_pdf(cert, issuer=issuer or issuer_from_env(), reissued_at=reissued_at)
    except CertificateNotPrintable as exc:  # pragma: no cover - ensure_printable catches it first
        raise Conflict(str(exc), f"証明書 {cert.number} は印刷できません") from None
