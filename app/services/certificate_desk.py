"""The certificate desk, written once: issue, issue by the manual path, reissue, void, print.

Each flow applies the rules of `app.services.certificate_rules` over a `CertificateStore`, the
few reads and writes the rules need. Two stores implement it: the shelter's over its SQLite
session (`app.services.certificates.ShelterCertificates`; writes join the caller's transaction)
and the hub's over a municipality's PostgreSQL rows (`app.hub_certificates.HubCertificates`; each
write is one transaction under the tenant's lock). So a certificate checks, counts and prints the
same at either desk, and a rule changed here changes at both (ARCHITECTURE.md §9).

The stores do what only storage can: number a certificate, keep its history, tell the other side
(the laptop's sync event, the hub's notice to the issuing laptop) and audit each step. A check
that must see the row as it is inside the write (a second certificate for the household, a void
meanwhile) is handed to the store as a callback, so the store runs the rule under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, Protocol

from app.formats.certificate_pdf import Issuer
from app.services.certificate_rules import (
    clean_number, clean_text, identity_for, kind_and_damage, manual_fields, member_dict, refuse_duplicate,
    refuse_reissue_void, refuse_restricted, refuse_unusable, refuse_void_again, render_pdf, resident_name, void_reason,
)

#: (kind, status, cause, number) of the household's registry-based certificates
Issued = tuple[str, str, str, str]


@dataclass
class DeskHousehold:
    """The applicant's household as a store found it in its newest registry (head first)."""

    applicant: Any  # has resident_id, household_id, address and the name fields (`resident_name`)
    head: Any
    head_found: bool
    members: list[Any]
    restricted: bool  # someone in it is under 閲覧制限 (by the store's one rule)
    snapshot_id: Any
    link_decision: Optional[str] = None  # auto | confirmed, of the current link to an evacuee
    link_evacuee: Optional[str] = None
    link_note: str = ""  # appended to the identity note (the hub: matched at another town's shelter)
    extra: dict[str, Any] = field(default_factory=dict)  # store-specific content (the hub: as_of, restricted)


class CertificateStore(Protocol):
    """What the desk's rules read and write, at the shelter or at the hub."""

    def household(self, resident_id: str) -> DeskHousehold:
        """The household of this 宛名番号 in the newest registry (InvalidInput / NotFound otherwise)."""

    def add(self, content: dict[str, Any], *, resident_id: str, household_id: str, subjects: list[str], by: Any,
            check: Optional[Callable[[Iterable[Issued]], None]]) -> Any:
        """Number and store a new certificate with its history and audit entry; `check` first sees
        the household's registry-based certificates (within the same write)."""

    def shown(self, number: str) -> Any:
        """One certificate as this desk shows it (status, void reason, reissue count, …); NotFound."""

    def reissued(self, number: str, *, reason: str, by: Any, check: Callable[[str, str], None]) -> Any:
        """Count a reissue (+1) after `check(status, void_reason)` under the write; history, audit, the
        other side told."""

    def voided(self, number: str, *, reason: str, by: Any, check: Callable[[str, str], None]) -> Any:
        """Mark void after `check(status, void_reason)` under the write; history, audit, the other side told."""

    def restricted(self, cert: Any) -> bool:
        """The certificate's household is under 閲覧制限 (the store's one rule, fail closed)."""

    def reissued_at(self, cert: Any) -> Optional[datetime]:
        """When it was last reissued (printed on the paper), or None."""

    def issuer(self) -> Issuer:
        """Who certifies on this desk's paper."""

    def printed(self, cert: Any, by: Any) -> None:
        """Audit a print."""


def issue(store: CertificateStore, *, resident_id: str, kind: str, cause: str, damage: Optional[str] = None,
          location: str = "", in_person: bool = False, identity_note: str = "", include_members: bool = True,
          by: Any = "", allow_restricted: bool = True) -> Any:
    """Issue to the household of resident `resident_id` (宛名番号) in the newest registry.

    `in_person`: the desk checked the applicant's ID (needed when no current match links the
    resident to an evacuee). `allow_restricted` False (roles that may not see 閲覧制限 people)
    refuses a flagged household's certificate rather than printing its address."""
    kind, damage_code = kind_and_damage(kind, damage)
    cause = clean_text(cause, "cause", "罹災原因")
    location = clean_text(location, "location", "被災住家の所在地", required=False)
    identity_note = clean_text(identity_note, "identity_note", "本人確認の方法", required=False)
    hh = store.household(resident_id)
    rid = str(hh.applicant.resident_id)
    if hh.restricted and not allow_restricted:
        refuse_restricted(rid)
    identity, identity_note = identity_for(hh.link_decision, bool(in_person), identity_note, rid)
    identity_note = (identity_note + hh.link_note).strip() if hh.link_note else identity_note
    members = [member_dict(m) for m in hh.members]
    address = hh.head.address or ""
    content = {"kind": kind, "damage": damage_code, "cause": cause, "head_address": address,
               "head_name": resident_name(hh.head), "location": location or address,
               "members": members if include_members else [], "manual": False, "manual_reason": "",
               "identity": identity, "identity_note": identity_note, "evacuee_id": hh.link_evacuee,
               "snapshot_id": hh.snapshot_id, **hh.extra}
    subjects = [f"resident:{m['resident_id']}" for m in members]
    if hh.link_evacuee:
        subjects.append(f"evacuee:{hh.link_evacuee}")

    def one_per_household(issued: Iterable[Issued]) -> None:
        refuse_duplicate(issued, kind, cause)

    return store.add(content, resident_id=rid, household_id=hh.applicant.household_id or "", subjects=subjects,
                     by=by, check=one_per_household)


def issue_manual(store: CertificateStore, *, kind: str, cause: str, name: str, address: str,
                 damage: Optional[str] = None, location: str = "", members: Iterable[dict[str, Any]] = (),
                 note: str = "", by: Any = "") -> Any:
    """The manual path: the registry does not know the applicant, so the household is as declared (手動)."""
    content = manual_fields(kind=kind, cause=cause, name=name, address=address, damage=damage, location=location,
                            members=members, note=note)
    return store.add(content, resident_id="", household_id="", subjects=[], by=by, check=None)


def reissue(store: CertificateStore, number: Any, *, reason: str = "", by: Any = "",
            allow_restricted: bool = True) -> Any:
    """Same number, same content, reissue count +1 (counting on from the other desk's reissues),
    logged; a void certificate (either desk's void), a 閲覧制限 one for a caller without
    `allow_restricted`, or one whose content this desk never received, is refused."""
    number = clean_number(number)
    reason = clean_text(reason, "reason", "再発行の理由", required=False)

    cert = store.shown(number)
    refuse_unusable(cert, "reissue", allow_restricted=allow_restricted,
                    restricted=not allow_restricted and store.restricted(cert))
    return store.reissued(number, reason=reason, by=by,
                          check=lambda status, why: refuse_reissue_void(number, status, why))


def void(store: CertificateStore, number: Any, reason: Any, *, by: Any = "") -> Any:
    """Mark a certificate void (never deleted); the reason is required and kept. Discloses nothing,
    so it is open to every desk role."""
    reason = void_reason(reason)
    number = clean_number(number)
    return store.voided(number, reason=reason, by=by, check=lambda status, why: refuse_void_again(number, status, why))


def pdf(store: CertificateStore, number: Any, *, by: Any = "", allow_restricted: bool = True,
        issuer: Optional[Issuer] = None) -> tuple[Any, bytes]:
    """(certificate, A4 PDF bytes), audited as a print; a void or otherwise unusable one is refused."""
    cert = store.shown(clean_number(number))
    refuse_unusable(cert, "print", allow_restricted=allow_restricted,
                    restricted=not allow_restricted and store.restricted(cert))
    data = render_pdf(cert, reissued_at=store.reissued_at(cert), issuer=issuer or store.issuer())
    store.printed(cert, by)
    return cert, data
