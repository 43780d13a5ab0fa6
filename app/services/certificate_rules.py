"""The certificate desk's rules (り災証明書 / 被災証明書), the same at the shelter and the hub.

Plain functions over plain data: what people type (kind, damage grade, members, free text), the
short id in a number, the household's head and order, how the applicant is tied to the registry,
the refusals (閲覧制限, a second valid certificate, a void one), the manual path's content, what the
paper shows and the one renderer. The desk flows that use them over either store are in
`app.services.certificate_desk`; the shelter's store is `app.services.certificates`, the hub's
`app.hub_certificates` (ARCHITECTURE.md §9).
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime
from typing import Any, Iterable, Optional

from app.formats.certificate_pdf import (  # noqa: F401 - DAMAGE_JA, Issuer: for either desk
    DAMAGE_GRADES,
    DAMAGE_JA,
    KIND_JA,
    MANUAL_NOTE,
    CertificateNotPrintable,
    Issuer,
    render_certificate_pdf,
)
from app.services.errors import Conflict, Forbidden, InvalidInput
from matching.dates import DateError, parse_date

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


def who(by: Any) -> str:
    """How a shelter row names the person who acted (a staff user or a CLI operator's string)."""
    return str(by if isinstance(by, str) else getattr(by, "name", "") or "")


# --- numbering ------------------------------------------------------------------------------------

def short_device_id(device_id: str) -> str:
    """6 Crockford-base32 characters (no I, L, O, U: nothing to misread at the desk) of SHA-256(device_id)."""
    bits = int.from_bytes(hashlib.sha256(device_id.encode("utf-8")).digest()[:4], "big") >> 2  # 30 bits
    return "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(25, -1, -5))



def clean_number(number: Any) -> str:
    """A 整理番号 as typed: trimmed, upper case; empty or not text is refused."""
    if not isinstance(number, str) or not number.strip():
        raise InvalidInput("a certificate number (整理番号) is needed", "整理番号を指定してください", "number")
    return number.strip().upper()


# --- the household ------------------------------------------------------------------------------

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


# --- reissue, void, print -------------------------------------------------------------------------

def issuer_from_env() -> Issuer:
    """The certifying 市町村長 as printed (ANPI_CERT_ISSUER, e.g. 陸前高田市長　山田太郎); empty → a line to sign."""
    from app.config import Settings  # read when printing: the operator may set it per run

    return Issuer(Settings.from_env().cert_issuer.strip())


def ensure_printable(cert: Any) -> None:
    """A void certificate is never printed, at either desk."""
    if cert.status != "issued":
        raise Conflict(f"certificate {cert.number} is void and can never be printed (reason: {cert.void_reason})",
                       f"証明書 {cert.number} は無効のため印刷できません（理由: {cert.void_reason}）")


def refuse_unusable(cert: Any, action: str, *, restricted: bool = False, allow_restricted: bool = True) -> None:
    """Before a reissue (`action` "reissue") or a print ("print"): a void certificate is refused (409);
    a 閲覧制限 household's (`restricted`) for a caller without `allow_restricted` (403: the paper
    carries the address); one whose printed content this desk never received (a laptop's, at the
    hub, before the laptop enrolled; `content_known` False) is refused (409)."""
    if action == "print":
        ensure_printable(cert)
    refuse_reissue_void(cert.number, cert.status, cert.void_reason)
    if restricted and not allow_restricted:
        raise Forbidden(f"certificate {cert.number} belongs to a household under 閲覧制限 (DV等支援措置); "
                        "HQ or an administrator must handle it",
                        "この証明書の世帯は閲覧制限（支援措置）の対象です。本部または管理者が対応してください")
    if not getattr(cert, "content_known", True):
        raise Conflict(f"certificate {cert.number} was issued on a shelter laptop that did not send its content to "
                       "the hub (issued before the laptop enrolled); reissue or print it on that laptop",
                       f"証明書 {cert.number} の記載内容は本部に届いていません。発行した避難所の端末で再発行・印刷してください")


def refuse_reissue_void(number: str, status: str, void_reason: str) -> None:
    """A void certificate (voided at either desk) is never reissued."""
    if status != "issued":
        raise Conflict(f"certificate {number} is void and cannot be reissued (reason: {void_reason})",
                       f"証明書 {number} は無効のため再発行できません（理由: {void_reason}）")


def refuse_void_again(number: str, status: str, void_reason: str) -> None:
    """A certificate is voided once: a second void (here, or after the other desk's) is refused."""
    if status != "issued":
        raise Conflict(f"certificate {number} is already void (reason: {void_reason})",
                       f"証明書 {number} はすでに無効です（理由: {void_reason}）")


def void_reason(reason: Any) -> str:
    """The reason a void needs (required, kept with the certificate)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("voiding a certificate needs a reason (--reason)", "無効にする理由を入力してください", "reason")
    return clean_text(reason, "reason", "無効にする理由")


def list_status(status: str) -> str:
    """A list filter's status: issued, void (also "voided") or "" (both)."""
    status = {"voided": "void"}.get(status or "", status or "")
    if status and status not in STATUS_JA:
        raise InvalidInput(f"unknown status {status!r} (issued or void)", "状態が正しくありません（有効・無効）", "status")
    return status


def render_pdf(cert: Any, *, reissued_at: Optional[datetime] = None, issuer: Issuer | None = None) -> bytes:
    """The one way either desk (shelter or hub) turns a certificate into A4 PDF bytes: refuses a void
    one, prints the certifying 市町村長 from ANPI_CERT_ISSUER unless `issuer` says otherwise."""
    ensure_printable(cert)
    try:
        return render_certificate_pdf(cert, issuer=issuer or issuer_from_env(), reissued_at=reissued_at)
    except CertificateNotPrintable as exc:  # pragma: no cover - ensure_printable catches it first
        raise Conflict(str(exc), f"証明書 {cert.number} は印刷できません") from None
