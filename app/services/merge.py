"""統合: two in-shelter records of one person become one, nothing of either lost (issue 14 item 2).

A person registered twice (once as 「72歳」, once with S29.3.21) must not count twice, and one
resident must not be linked to two people in the shelter. Merging keeps both rows: the kept
record takes every item only the duplicate had (a full date of birth over an age, the reading,
phone, care flags …, sent to the hub as an ordinary edit); the duplicate leaves the shelter with
a 退所 whose destination names the kept record, and is linked by staff to the same resident, so
its history and what it said stay readable and nothing waits in 照合確認 for it any more.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.models import Evacuee, StayEvent
from app.services.errors import Conflict, InvalidInput
from app.services.evacuees import EDITABLE, check_out, full_name, get_evacuee, update_evacuee

_RAW = {"name": "name_raw", "name_kana": "name_kana_raw", "birth_date": "birth_raw", "sex": "sex_raw",
        "address": "address_raw", "phone": "phone_raw"}


def _filled_from(keep: Evacuee, dup: Evacuee) -> dict[str, Any]:
    """What the duplicate knew that the kept record does not (never overwriting what it has)."""
    changes: dict[str, Any] = {}
    for k in EDITABLE:
        mine, theirs = getattr(keep, _RAW.get(k, k)) or "", getattr(dup, _RAW.get(k, k)) or ""
        if theirs.strip() and not mine.strip():
            changes[k] = theirs
    if keep.birth_kind != "day" and dup.birth_kind == "day":
        changes["birth_date"] = dup.birth_raw  # a day of birth says more than an age or a year
    care = {**(dup.care_flags or {}), **{k: v for k, v in (keep.care_flags or {}).items() if v}}
    if care != dict(keep.care_flags or {}):
        changes["care_flags"] = care
    return changes


def merge_into(session: Session, dup_id: str, keep_id: str, resident_id: str, *, by: str) -> StayEvent:
    """Merge the duplicate `dup_id` into `keep_id` (both in the shelter, one resident)."""
    from app.services.reconcile import staff_decide

    if dup_id == keep_id:
        raise InvalidInput("cannot merge a record into itself", "同じ記録どうしは統合できません", "keep_id")
    dup, keep = get_evacuee(session, dup_id), get_evacuee(session, keep_id)
    if dup.status != "in_shelter" or keep.status != "in_shelter":
        raise Conflict("only two records of people in the shelter can be merged", "在所中の方の記録どうしだけ統合できます")
    changes = _filled_from(keep, dup)
    if changes:
        update_evacuee(session, keep.id, changes, by=by)
    stay = check_out(session, dup.id, by=by,
                     destination=f"統合: {full_name(keep)}（{keep.external_key or keep.id}）の記録へ")
    staff_decide(session, dup.id, "confirmed", resident_id, by=by, reasons=f"merged into {keep.id} by {by}")
    return stay
