"""The PFIF desk's link decisions, written once: staff confirm or reject a proposed link between a
sought person (尋ね人, from an imported PFIF file) and a resident or an evacuee, or undo their last
decision on it.

The rules for proposing, re-linking and exporting are in `app.services.pfif_rules`; this module
is the staff decision over a `PfifLinkStore`, the reads and the one write it needs. Two stores
implement it: the shelter's over its SQLite session (`app.services.pfif.ShelterPfifLinks`) and the
hub's over one municipality's PostgreSQL rows (`app.hub_pfif.HubPfifLinks`, inside the caller's
transaction under the tenant's lock). A link's rows are append-only; its newest row is its state
(ARCHITECTURE.md §9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Protocol

from app.services.errors import AlreadyDone, Conflict, InvalidInput, NotFound
from app.services.pfif_rules import ENGINE, STAFF_FINAL

TARGET_KINDS = ("resident", "evacuee")
DECISIONS = ("confirmed", "rejected", "undo")
DECISION_JA = {"auto": "自動照合", "review": "要確認", "confirmed": "確認済み", "rejected": "別人"}


@dataclass(frozen=True)
class LinkRow:
    """One row of a link's history in the engine's vocabulary: `decision` auto / review (the
    engine's proposal) or confirmed / rejected; `by_user` empty for the engine's rows."""

    decision: str
    by_user: str
    at: Optional[datetime]
    row: Any  # the store's own row, handed back to it


class PfifLinkStore(Protocol):
    """What a staff decision on a link reads and writes, at the shelter or at the hub."""

    def history(self, sought_id: str, target_kind: str, target_id: str) -> list[LinkRow]:
        """The link's rows, oldest first; [] when there is no such link (or no such sought person)."""

    def hidden(self, target_kind: str, target_id: str) -> bool:
        """The target is under 閲覧制限 (the store's one rule, fail closed)."""

    def write(self, sought_id: str, target_kind: str, target_id: str, *, decision: str, last: LinkRow,
              base: Optional[LinkRow], at: datetime) -> Any:
        """Append the decision's row (for "undo": the engine's proposal `base` again, or review) and audit it."""


def check_decision(decision: str, target_kind: str) -> None:
    """The decision and the target kind, as asked."""
    if decision not in DECISIONS:
        raise InvalidInput(f"unknown decision {decision!r} (confirmed, rejected or undo)", "判定が正しくありません",
                           "decision")
    if target_kind not in TARGET_KINDS:
        raise InvalidInput(f"unknown target kind {target_kind!r} (resident or evacuee)", "照合先の種類が正しくありません",
                           "target_kind")


def after(prev: Optional[datetime], now: datetime) -> datetime:
    """`now`, or just after `prev`: the newest row of a link is its state, so rows must sort in order."""
    if prev is None:
        return now
    prev = prev if prev.tzinfo else prev.replace(tzinfo=timezone.utc)
    return max(now, prev + timedelta(microseconds=1))


def decide_link(store: PfifLinkStore, sought_id: str, target_kind: str, target_id: str, decision: str, *,
                reveal_restricted: bool = False) -> Any:
    """Confirm or reject a proposed link, or undo the last staff decision on it: a new row (the
    store's answer). A link the caller may not see (閲覧制限) answers as not found; undoing what
    staff never decided is a conflict; deciding again what is already decided is AlreadyDone."""
    check_decision(decision, target_kind)
    rows = store.history(sought_id, target_kind, target_id)
    if not rows or (not reveal_restricted and store.hidden(target_kind, target_id)):
        raise NotFound(f"no link from sought person {sought_id} to {target_kind} {target_id}", "この照合候補はありません")
    last = rows[-1]
    base: Optional[LinkRow] = None
    if decision == "undo":
        if not (last.by_user and last.decision in STAFF_FINAL):
            raise Conflict("nothing to undo: the link was not decided by staff", "取り消す判定がありません")
        base = next((r for r in reversed(rows) if r.decision in ENGINE), None)
    elif last.decision == decision and last.by_user:
        raise AlreadyDone(f"already {decision} by {last.by_user}", f"すでに{DECISION_JA[decision]}になっています")
    return store.write(sought_id, target_kind, target_id, decision=decision, last=last, base=base,
                       at=after(last.at, datetime.now(timezone.utc)))
