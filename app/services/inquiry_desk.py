"""The 安否照会 desk, written once: find the person asked about, decide what may be said, log it.

The rules are in `app.services.inquiry_rules` (consent tiers ⑫⑬⑭, identification without
guessing, the one "no information" wording, the form checks, the audit shape). This module is
the desk's flow over an `InquiryStore`, the reads and writes those rules need; two stores
implement it: the shelter's over its SQLite session (`app.services.inquiry.ShelterInquiries`, its
own evacuees) and the hub's over one municipality's PostgreSQL rows (`app.hub_inquiry.HubInquiries`,
every shelter of the town, several registrations of one person taken together). Either store
finds people by the same `fits` and `decide`, and answers by the same `answer_inquiry`
(ARCHITECTURE.md §9).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Protocol, Sequence

from app.services.inquiry_rules import (
    Asked, Consents, InquiryRequest, PersonFacts, answer_for, answer_text, fit, require_valid,
)


class FoundLike(Protocol):
    """What a store's search decided (its own dataclass): `kind` one / none / restricted / ambiguous,
    every evacuee id considered, and those of them the answer may never name."""

    kind: str
    candidates: list[str]
    restricted: list[str]


class InquiryStore(Protocol):
    """What the desk's rules read and write, at the shelter or at the hub."""

    def find(self, r: InquiryRequest) -> FoundLike:
        """The one person the inquirer means (`fits` + `inquiry_rules.decide`, 閲覧制限 by the store's one rule)."""

    def consents(self, found: Any) -> Optional[Consents]:
        """The consents ⑫⑬⑭ of the one person found (None when there is none)."""

    def disclosed(self, found: Any, shown: Sequence[int]) -> tuple[Optional[str], list[dict[str, Any]]]:
        """(evacuee id, the items `shown` as the desk says them) of the one person found, or (None, [])."""

    def log_search(self, r: InquiryRequest, found: Any) -> Any:
        """Record that the desk was asked for more detail (audit action "inquiry_search")."""

    def log_answer(self, r: InquiryRequest, found: Any, *, outcome: str, evacuee_id: Optional[str],
                   items: list[dict[str, Any]], text: str) -> Any:
        """Record the inquiry and its audit entry ("inquiry"), with the real outcome."""


def fits(asked: Asked, people: Iterable[tuple[str, PersonFacts, Optional[PersonFacts]]]) -> dict[str, str]:
    """id → "strong" / "weak" for every registration the asked details could mean: each as typed
    (`PersonFacts`) and, when linked, as the registry records its resident (`inquiry_rules.fit`)."""
    out: dict[str, str] = {}
    for pid, facts, linked in people:
        how = fit(asked, facts, (linked,) if linked is not None else ())
        if how is not None:
            out[pid] = how
    return out


def answer_inquiry(store: InquiryStore, req: InquiryRequest) -> Any:
    """Find the person, decide what may be said, and record the inquiry (the store's answer).

    When the person cannot be identified and the desk has not given up, nothing is answered: the
    desk is asked for more detail. A person under 閲覧制限 gets the one "no information" answer,
    the same as nobody found; only the log keeps the real outcome (and the one restricted id)."""
    r = require_valid(req)
    found = store.find(r)
    if found.kind == "ambiguous" and not r.give_up:
        return store.log_search(r, found)
    outcome, shown = answer_for(found.kind, r.relationship, store.consents(found))
    evacuee_id, items = store.disclosed(found, shown)
    if evacuee_id is None and found.kind == "restricted" and len(found.restricted) == 1:
        evacuee_id = found.restricted[0]
    return store.log_answer(r, found, outcome=outcome, evacuee_id=evacuee_id, items=items, text=answer_text(items))
